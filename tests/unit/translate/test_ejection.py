"""`always_eject_one_host` through every layer (model, flags, Envoy and gRPC translations),
and the note when a policy's max_ejection_percent can eject no host of a service."""

from __future__ import annotations

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.model import endpoints, service
from xdscp.cli.policy_flags import flag_for, resilience_fields
from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, ClientKind, Endpoint, OutlierDetection, Service
from xdscp.registry.schema import parse_policy, policy_value
from xdscp.translate import cluster_for, translator_for
from xdscp.translate.grpc import grpc_cluster, grpc_warnings


def _service(hosts: int, **outlier: object) -> Service:
    return service(endpoints(*[1] * hosts), outlier_detection=outlier)


def test_envoy_gets_always_eject_one_host_only_when_asked() -> None:
    """Set: Envoy's BoolValue is true. Unset: the field is absent, so the bytes of every
    other cluster are as before."""
    asked = cluster_for(_service(3, always_eject_one_host=True)).outlier_detection
    assert asked.HasField("always_eject_one_host")
    assert asked.always_eject_one_host.value is True
    plain = cluster_for(_service(3)).outlier_detection
    assert not plain.HasField("always_eject_one_host")


@pytest.mark.parametrize(
    ("policy", "merged"),
    [
        ({"outlier_detection": {"consecutive_5xx": 3}}, False),
        ({"health_check": {"kind": "tcp"}}, False),
        ({"outlier_detection": {}, "health_check": {"kind": "http", "path": "/h"}}, False),
        ({"circuit_breakers": {"max_requests": 8}}, True),
        ({}, True),
    ],
)
def test_health_changes_reach_envoys_balancers_unmerged(
    policy: dict[str, object], merged: bool
) -> None:
    """A cluster whose hosts can be ejected or fail a check sets `update_merge_window` 0 (with
    Envoy's default, 1 s, an ejection soon after another health change reached the workers
    only a second later); any other cluster leaves the field out, its bytes as before."""
    service = Service("web", (Endpoint("10.0.0.1", 80),), BalancingPolicy(**policy))  # type: ignore[arg-type]
    common = cluster_for(service).common_lb_config
    assert common.HasField("update_merge_window") is not merged
    assert common.update_merge_window.ToNanoseconds() == 0
    assert not grpc_cluster(service).common_lb_config.HasField("update_merge_window")


def test_grpc_is_not_sent_it_and_is_told_what_it_does() -> None:
    """gRPC (A50) has no such field: not sent, and a note says gRPC's own rule."""
    service = _service(3, always_eject_one_host=True, failure_percentage={"threshold": 50})
    cluster = grpc_cluster(service)
    assert cluster.HasField("outlier_detection")
    assert not cluster.outlier_detection.HasField("always_eject_one_host")
    notes = [n for n in grpc_warnings(service) if "always_eject_one_host" in n]
    assert notes == [
        "outlier_detection: gRPC has no always_eject_one_host; it ejects while fewer than"
        " max_ejection_percent % of its endpoints are ejected, so its first ejection"
        " happens whatever the endpoint count (none when max_ejection_percent is 0)"
    ]


def test_the_flag_and_the_json_form_round_trip() -> None:
    """`--always-eject-one-host` sets the field; the stored JSON reads back the same."""
    fields = resilience_fields({"always_eject_one_host": True, "consecutive_5xx": 3})
    policy = BalancingPolicy(**fields)
    assert policy.outlier_detection == OutlierDetection(
        consecutive_5xx=3, always_eject_one_host=True
    )
    assert parse_policy(policy_value(policy)) == policy
    assert flag_for("outlier_detection.always_eject_one_host") == "--always-eject-one-host"


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_non_boolean_is_refused(bad: object) -> None:
    """Only true or false, named by its dotted field."""
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(outlier_detection={"always_eject_one_host": bad})  # type: ignore[arg-type]
    assert info.value.field == "outlier_detection.always_eject_one_host"


@pytest.mark.parametrize(
    ("percent", "hosts", "note"),
    [
        (10, 3, "max_ejection_percent 10 lets Envoy eject no host of 3 (one is 33 %)"
                ": set always_eject_one_host, or max_ejection_percent 34 or more"),
        (33, 3, "max_ejection_percent 33 lets Envoy eject no host of 3"),
        (34, 3, None),
        (10, 10, None),
        (10, 9, "max_ejection_percent 10 lets Envoy eject no host of 9 (one is 11 %)"),
        (50, 2, None),
        (0, 100, "max_ejection_percent 0 lets Envoy eject no host of 100"),
        (10, 0, None),
    ],
)  # fmt: skip
def test_ejection_note_boundaries(percent: int, hosts: int, note: str | None) -> None:
    """Envoy ejects while 100 * (ejected + 1) / hosts <= max_ejection_percent."""
    got = OutlierDetection(max_ejection_percent=percent).ejection_note(hosts)
    assert (got is None) == (note is None)
    if note is not None:
        assert got is not None
        assert note in got


@given(st.integers(0, 100), st.integers(1, 500))
def test_the_note_is_exactly_envoys_rule(percent: int, hosts: int) -> None:
    """A note iff Envoy's own check refuses the first ejection (and none with
    always_eject_one_host, which lets the first one through)."""
    envoy_ejects_first = 100.0 * 1 / hosts <= percent
    outlier = OutlierDetection(max_ejection_percent=percent)
    assert (outlier.ejection_note(hosts) is None) == envoy_ejects_first
    assert (
        OutlierDetection(max_ejection_percent=percent, always_eject_one_host=True).ejection_note(
            hosts
        )
        is None
    )


def test_serve_warns_once_while_the_note_holds() -> None:
    """The Envoy translator logs `outlier_ejection_impossible` when a policy meets an endpoint
    count it can eject none of, not again for the same count, and again after a change."""
    translator = translator_for(ClientKind.ENVOY)
    with structlog.testing.capture_logs() as logs:
        translator.translate({"web": _service(3)})
        translator.translate({"web": _service(3, interval=5)})  # same note: no new warning
        translator.translate({"web": _service(10)})  # 10 % of 10 hosts is one: no note
        translator.translate({"web": _service(4)})
        translator.translate({"web": _service(4, always_eject_one_host=True)})
    warned = [e for e in logs if e["event"] == "outlier_ejection_impossible"]
    assert [(e["service"], e["endpoints"]) for e in warned] == [("web", 3), ("web", 4)]
    assert "web" not in translator.notes
