"""RegistryState: etcd changes in, validated services out."""

from __future__ import annotations

import json

from xdscp.etcd import WatchEvent, WatchEventType
from xdscp.model import LbPolicy
from xdscp.registry import GrpcGoTarget, RegistryLayout, RegistryState

ROOT = "/xdscp/services/"


def put(key: str, value: object, revision: int = 1) -> WatchEvent:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return WatchEvent(WatchEventType.PUT, key.encode(), raw, revision)


def delete(key: str, revision: int = 1) -> WatchEvent:
    return WatchEvent(WatchEventType.DELETE, key.encode(), b"", revision)


def no_dns(host: str) -> str | None:
    return None


def addresses(state: RegistryState, lookup=no_dns) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    services, _ = state.build(lookup)
    return {name: [e.key for e in s.endpoints] for name, s in services.items()}


def test_every_service_under_the_root_is_discovered() -> None:
    """Each `<root>/<service>/<id>` key feeds its service."""
    state = RegistryState()
    state.apply_native(
        [
            put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80}),
            put(ROOT + "a/2", {"address": "10.0.0.2", "port": 80}),
            put(ROOT + "b/1", {"address": "10.0.1.1", "port": 81}),
        ]
    )
    assert addresses(state) == {"a": ["10.0.0.1:80", "10.0.0.2:80"], "b": ["10.0.1.1:81"]}


def test_a_malformed_entry_is_skipped_and_the_others_stay() -> None:
    """One bad value is rejected with its key and reason; its service keeps the good ones."""
    state = RegistryState()
    rejections = state.apply_native(
        [
            put(ROOT + "a/good", {"address": "10.0.0.1", "port": 80}),
            put(ROOT + "a/bad", {"address": "10.0.0.2", "port": 0}),
            put(ROOT + "a", {"address": "10.0.0.3", "port": 80}),
        ]
    )
    assert [(r.key, r.reason) for r in rejections] == [
        (ROOT + "a/bad", "invalid_port"),
        (ROOT + "a", "bad_key"),
    ]
    assert addresses(state) == {"a": ["10.0.0.1:80"]}


def test_an_update_to_an_invalid_value_removes_the_old_registration() -> None:
    """A key whose new value is invalid no longer registers its previous value."""
    state = RegistryState()
    state.apply_native([put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80})])
    state.apply_native([put(ROOT + "a/1", b"{oops")])
    assert addresses(state) == {}


def test_deleting_the_last_endpoint_removes_the_service() -> None:
    """A service with no registrations left disappears."""
    state = RegistryState()
    state.apply_native([put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80})])
    assert addresses(state) == {"a": ["10.0.0.1:80"]}
    state.apply_native([delete(ROOT + "a/1")])
    assert addresses(state) == {}


def test_duplicate_address_is_kept_once_deterministically() -> None:
    """Same ip:port under two keys: the smallest key wins, the other is reported once."""
    state = RegistryState()
    state.apply_native(
        [
            put(ROOT + "a/z", {"address": "10.0.0.1", "port": 80, "weight": 9}),
            put(ROOT + "a/b", {"address": "10.0.0.1", "port": 80, "weight": 2}),
        ]
    )
    services, rejections = state.build(no_dns)
    assert [e.weight for e in services["a"].endpoints] == [2]
    assert [(r.key, r.reason) for r in rejections] == [(ROOT + "a/z", "duplicate")]
    state.apply_native([put(ROOT + "a/c", {"address": "10.0.0.2", "port": 80})])
    _, again = state.build(no_dns)
    assert again == []


def test_hostnames_are_resolved_before_the_model() -> None:
    """A hostname becomes the IP the lookup returns; unresolvable hosts are skipped."""
    state = RegistryState()
    state.apply_native(
        [
            put(ROOT + "a/1", {"address": "api.internal", "port": 80}),
            put(ROOT + "a/2", {"address": "nowhere.invalid", "port": 80}),
        ]
    )
    assert state.hostnames() == {"api.internal", "nowhere.invalid"}
    table = {"api.internal": "192.0.2.7"}
    services, rejections = state.build(table.get)
    assert [e.key for e in services["a"].endpoints] == ["192.0.2.7:80"]
    assert [(r.key, r.reason) for r in rejections] == [(ROOT + "a/2", "unresolvable")]


def test_policy_key_sets_the_service_policy_and_bad_policy_is_rejected() -> None:
    """`<policies>/<service>` holds the policy; an invalid one over it keeps the last good."""
    state = RegistryState()
    state.apply_native([put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80})])
    state.apply_policies([put("/xdscp/policies/a", {"lb": "maglev", "hash_on": ["header:x-u"]})])
    services, _ = state.build(no_dns)
    assert services["a"].policy.lb is LbPolicy.MAGLEV
    rejections = state.apply_policies(
        [put("/xdscp/policies/a", {"lb": "maglev", "min_ring_size": 0})]
    )
    assert [r.reason for r in rejections] == ["invalid_policy"]
    assert "last good policy" in rejections[0].message
    services, _ = state.build(no_dns)
    assert services["a"].policy.lb is LbPolicy.MAGLEV
    state.apply_policies([delete("/xdscp/policies/a")])
    services, _ = state.build(no_dns)
    assert services["a"].policy.lb is LbPolicy.ROUND_ROBIN


def test_grpc_go_target_matches_its_own_prefix_only() -> None:
    """Target `svc` reads `svc/<id>`; `svc2/<id>` belongs to another target."""
    svc, svc2 = GrpcGoTarget.parse("svc"), GrpcGoTarget.parse("other=svc2")
    state = RegistryState(RegistryLayout(grpc_targets=(svc, svc2)))
    assert addresses(state) == {"svc": [], "other": []}
    state.apply_grpc_go(svc, [put("svc/1", {"Op": 0, "Addr": "10.0.0.1:50051"})])
    state.apply_grpc_go(svc2, [put("svc2/1", {"Op": 0, "Addr": "10.0.0.2:50051"})])
    rejections = state.apply_grpc_go(svc, [put("svc2/9", {"Op": 0, "Addr": "10.0.0.9:1"})])
    assert [r.reason for r in rejections] == ["bad_key"]
    assert addresses(state) == {"svc": ["10.0.0.1:50051"], "other": ["10.0.0.2:50051"]}
    state.apply_grpc_go(svc, [put("svc/1", {"Op": 1, "Addr": "10.0.0.1:50051"})])
    assert addresses(state)["svc"] == []


def test_only_changed_services_are_rebuilt() -> None:
    """Unchanged services are the very same objects after a build."""
    state = RegistryState()
    state.apply_native(
        [
            put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80}),
            put(ROOT + "b/1", {"address": "10.0.0.2", "port": 80}),
        ]
    )
    first, _ = state.build(no_dns)
    state.apply_native([put(ROOT + "b/2", {"address": "10.0.0.3", "port": 80})])
    second, _ = state.build(no_dns)
    assert second["a"] is first["a"]
    assert second["b"] is not first["b"]
    assert len(second["b"].endpoints) == 2


def test_build_reports_whether_anything_changed_and_counts_endpoints() -> None:
    """Rewriting a key with the same content is not a change; counts follow adds/deletes."""
    state = RegistryState()
    value = {"address": "10.0.0.1", "port": 80}
    state.apply_native([put(ROOT + "a/1", value), put(ROOT + "a/2", value | {"port": 81})])
    state.build(no_dns)
    assert state.changed
    assert state.endpoint_count == 2
    state.apply_native([put(ROOT + "a/1", value, revision=5)])
    state.build(no_dns)
    assert not state.changed
    state.apply_native([delete(ROOT + "a/1"), delete(ROOT + "a/2")])
    services, _ = state.build(no_dns)
    assert state.changed
    assert state.endpoint_count == 0
    assert dict(services) == {}


def test_a_bad_client_side_wrr_setting_keeps_the_last_good_policy() -> None:
    """A stored client-side WRR policy whose setting a client would not take (an update
    period under 100 ms) is rejected naming the field; the service keeps its last good
    policy and its endpoints."""
    state = RegistryState()
    state.apply_native([put(ROOT + "a/1", {"address": "10.0.0.1", "port": 80})])
    good = {"lb": "client_side_weighted_round_robin", "client_side_wrr": {"blackout_period": 1}}
    state.apply_policies([put("/xdscp/policies/a", good)])
    bad = {**good, "client_side_wrr": {"weight_update_period": "50ms"}}
    rejections = state.apply_policies([put("/xdscp/policies/a", bad)])
    assert [r.reason for r in rejections] == ["invalid_policy"]
    assert "client_side_wrr.weight_update_period" in rejections[0].message
    services, _ = state.build(no_dns)
    settings = services["a"].policy.client_side_wrr
    assert settings is not None
    assert settings.blackout_period == 1.0
    assert [e.key for e in services["a"].endpoints] == ["10.0.0.1:80"]
