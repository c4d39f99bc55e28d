"""Proxyless gRPC translation: every policy is accepted by a gRPC client and keeps its intent."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2

from xdscp.balancer import build_balancer
from xdscp.cache import TypeUrl
from xdscp.errors import BalancerError
from xdscp.model import (
    BalancingPolicy,
    ClientKind,
    Endpoint,
    HashOn,
    Health,
    LbPolicy,
    Locality,
    Service,
)
from xdscp.translate import cluster_for, load_assignment_for, translator_for
from xdscp.translate.grpc import (
    grpc_cluster,
    grpc_listener,
    grpc_load_assignment,
    grpc_route_configuration,
    grpc_warnings,
)

WEIGHTS = (1, 2, 7)


def _service(lb: str, **policy: object) -> Service:
    endpoints = tuple(
        Endpoint(f"10.0.0.{i}", 80, weight=w, locality=Locality(zone="z1" if i < 3 else "z2"))
        for i, w in enumerate(WEIGHTS, 1)
    )
    return Service("greeter", endpoints, BalancingPolicy(lb=LbPolicy(lb), **policy))  # type: ignore[arg-type]


def _shares(service: Service, picks: int = 20_000, headers: bool = False) -> dict[str, float]:
    lb = build_balancer(
        grpc_cluster(service), grpc_load_assignment(service), client="grpc", rng=random.Random(7)
    )
    policies = grpc_route_configuration(service).virtual_hosts[0].routes[0].route.hash_policy
    counted: Counter[str] = Counter()
    for i in range(picks):
        key = (
            lb.request_hash(headers={"x-user": f"u{i}"}, route_policies=policies)
            if headers
            else None
        )
        counted[str(lb.choose(key))] += 1
    return {k: v / picks for k, v in sorted(counted.items())}


@pytest.mark.parametrize("lb", [p.value for p in LbPolicy])
def test_every_policy_is_accepted_by_grpc(lb: str) -> None:
    """The gRPC translation of every policy builds in the reference's gRPC mode (no NACK)."""
    service = _service(lb)
    assert build_balancer(grpc_cluster(service), grpc_load_assignment(service), client="grpc")


@pytest.mark.parametrize("lb", ["random", "least_request", "maglev"])
def test_envoy_translation_would_be_nacked_by_grpc(lb: str) -> None:
    """Why a separate translation exists: Envoy's resources for these make gRPC NACK."""
    service = _service(lb)
    with pytest.raises(BalancerError):
        build_balancer(cluster_for(service), load_assignment_for(service), client="grpc")


@pytest.mark.parametrize(
    ("lb", "expected"),
    [
        ("weighted_round_robin", {"10.0.0.1:80": 0.1, "10.0.0.2:80": 0.2, "10.0.0.3:80": 0.7}),
        ("round_robin", {"10.0.0.1:80": 1 / 3, "10.0.0.2:80": 1 / 3, "10.0.0.3:80": 1 / 3}),
        ("weighted_random", {"10.0.0.1:80": 0.1, "10.0.0.2:80": 0.2, "10.0.0.3:80": 0.7}),
        ("random", {"10.0.0.1:80": 1 / 3, "10.0.0.2:80": 1 / 3, "10.0.0.3:80": 1 / 3}),
        ("least_request", {"10.0.0.1:80": 1 / 3, "10.0.0.2:80": 1 / 3, "10.0.0.3:80": 1 / 3}),
    ],
)
def test_grpc_shares_keep_the_policy_intent(lb: str, expected: dict[str, float]) -> None:
    """A gRPC client spreads requests as the policy's name says (weights where it says so),
    within 0.015 of the share over 20,000 picks (about 5 standard deviations)."""
    assert _shares(_service(lb)) == pytest.approx(expected, abs=0.015)


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
def test_hash_policies_travel_in_the_route_and_follow_weights(lb: str) -> None:
    """The header hash goes in the route (gRPC ignores cluster-level policies); keys spread
    by endpoint weight, and the same key always lands on the same endpoint."""
    service = _service(lb, hash_on=(HashOn.parse("header:x-user"),))
    shares = _shares(service, picks=6000, headers=True)
    assert shares == pytest.approx(
        {"10.0.0.1:80": 0.1, "10.0.0.2:80": 0.2, "10.0.0.3:80": 0.7}, abs=0.03
    )
    assert _shares(service, picks=300, headers=True) == _shares(service, picks=300, headers=True)


def test_source_ip_hash_uses_the_channel_id() -> None:
    """gRPC has no source IP: source affinity hashes the channel id (filter state)."""
    route = grpc_route_configuration(_service("source_ip_hash"))
    (policy,) = route.virtual_hosts[0].routes[0].route.hash_policy
    assert policy.filter_state.key == "io.grpc.channel_id"
    assert grpc_warnings(_service("maglev"))


def test_listener_and_route_for_xds_target() -> None:
    """A Listener named as the target, api_listener only (HCM, router, RDS over ADS)."""
    service = _service("round_robin")
    listener = grpc_listener(service)
    assert listener.name == "greeter"
    assert not listener.HasField("address")
    manager = hcm_pb2.HttpConnectionManager()
    assert listener.api_listener.api_listener.Unpack(manager)
    assert manager.rds.route_config_name == "greeter"
    assert manager.rds.config_source.HasField("ads")
    assert [f.name for f in manager.http_filters] == ["envoy.filters.http.router"]
    host = grpc_route_configuration(service).virtual_hosts[0]
    assert list(host.domains) == ["*"]
    assert host.routes[0].route.cluster == "greeter"


def test_unhealthy_dropped_priorities_contiguous_localities_weighted() -> None:
    """Only healthy endpoints are sent; priorities are renumbered without gaps; every
    locality carries a weight (gRPC drops unweighted ones)."""
    endpoints = (
        Endpoint("10.0.0.1", 80, priority=0, health=Health.UNHEALTHY),
        Endpoint("10.0.0.2", 80, priority=3),
        Endpoint("10.0.0.3", 80, priority=7, health=Health.DRAINING),
        Endpoint("10.0.0.4", 80, priority=9),
    )
    cla = grpc_load_assignment(Service("s", endpoints))
    sent = [
        (g.priority, e.endpoint.address.socket_address.address)
        for g in cla.endpoints
        for e in g.lb_endpoints
    ]
    assert sent == [(0, "10.0.0.2"), (1, "10.0.0.4")]
    assert all(g.load_balancing_weight.value > 0 for g in cla.endpoints)


def test_grpc_snapshot_names_every_resource_after_the_service() -> None:
    """A gRPC snapshot holds Listener, Route, Cluster and CLA per service, named as it."""
    snapshot = (
        translator_for(ClientKind.GRPC).translate({"greeter": _service("ring_hash")}).snapshot
    )
    assert {t: sorted(snapshot.resources[t]) for t in TypeUrl} == {t: ["greeter"] for t in TypeUrl}


def _policy_names(policy_list: object) -> list[str]:
    return [p.typed_extension_config.name for p in policy_list.policies]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("lb", "outer", "inner"),
    [
        # grpc-go picks least request; grpcio skips it (unknown type) and rotates.
        ("least_request", ["wrr_locality"], ["least_request", "round_robin"]),
        ("maglev", ["maglev", "ring_hash"], None),  # neither client has Maglev
        ("random", ["ring_hash"], None),  # neither has random: a random hash on the ring
        ("round_robin", ["wrr_locality"], ["round_robin"]),
    ],
)
def test_policy_lists_put_the_better_choice_first(
    lb: str, outer: list[str], inner: list[str] | None
) -> None:
    """The first entry a client supports wins (gRFC A52, grpc-go and grpcio alike): each list
    names the policy a better client takes before the fallback every gRPC client has."""
    cluster = grpc_cluster(_service(lb))
    prefix = "envoy.load_balancing_policies."
    assert _policy_names(cluster.load_balancing_policy) == [prefix + n for n in outer]
    if inner is not None:
        wrapper = wrr_locality_pb2.WrrLocality()
        assert cluster.load_balancing_policy.policies[0].typed_extension_config.typed_config.Unpack(
            wrapper
        )
        assert _policy_names(wrapper.endpoint_picking_policy) == [prefix + n for n in inner]


def test_translator_keeps_the_grpc_notes_of_each_service() -> None:
    """The gRPC translator remembers each service's approximation notes (shown in status)
    while the policy needs them, and forgets them when it changes or the service goes."""
    from xdscp.model import ClientKind
    from xdscp.translate import translator_for

    endpoints = (Endpoint("10.0.0.1", 80),)
    translator = translator_for(ClientKind.GRPC)
    least = Service("web", endpoints, BalancingPolicy(lb=LbPolicy.LEAST_REQUEST))
    translator.translate({"web": least})
    assert "least_request" in translator.notes["web"][0]
    translator.translate({"web": Service("web", endpoints, BalancingPolicy())})
    assert "web" not in translator.notes
    translator.translate({"web": least})
    translator.translate({})
    assert translator.notes == {}
