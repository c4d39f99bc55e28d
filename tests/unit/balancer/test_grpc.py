"""client="grpc": what a proxyless gRPC channel does with the same resources (spec §7)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2

from tests.harness.balancer import Ep, balancer, cla, cluster, counts
from xdscp.balancer import BalancerError, Kind, build_balancer
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.grpc_lb import GrpcBalancer
from xdscp.balancer.hash.functions import xxh64


def _eps(*weights: int, locality_weight: int | None = 1) -> list[Ep]:
    return [
        Ep(f"10.0.0.{i}:80", w, locality_weight=locality_weight) for i, w in enumerate(weights, 1)
    ]


def test_round_robin_ignores_endpoint_weights() -> None:
    """Weights 1:2:7 in one locality: plain rotation, every host once per 3 picks."""
    lb = balancer(_eps(1, 2, 7), client="grpc", seed=4)
    picks = [str(lb.choose()) for _ in range(30)]
    for start in range(0, 30, 3):
        assert len(set(picks[start : start + 3])) == 3


def test_envoy_honours_the_weights_grpc_ignores() -> None:
    """The same resources: Envoy 10/20/70, gRPC 1/3 each (over 300 picks)."""
    envoy = counts(balancer(_eps(1, 2, 7)), 300)
    grpc = counts(balancer(_eps(1, 2, 7), client="grpc"), 300)
    assert envoy == {"10.0.0.1:80": 30, "10.0.0.2:80": 60, "10.0.0.3:80": 210}
    assert grpc == {"10.0.0.1:80": 100, "10.0.0.2:80": 100, "10.0.0.3:80": 100}


def test_locality_weights_pick_localities_at_random() -> None:
    """One endpoint per locality, locality weight = endpoint weight: weighted (random) RR."""
    endpoints = [Ep(f"10.0.0.{i}:80", zone=f"z{i}", locality_weight=w) for i, w in ((1, 1), (2, 3))]
    seen = counts(balancer(endpoints, client="grpc", seed=9), 20_000)
    assert seen["10.0.0.2:80"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_locality_without_weight_is_dropped() -> None:
    """A locality with no load_balancing_weight is silently dropped (Envoy would use it)."""
    endpoints = [Ep("10.0.0.1:80", zone="a", locality_weight=1), Ep("10.0.1.1:80", zone="b")]
    assert counts(balancer(endpoints, client="grpc"), 20) == {"10.0.0.1:80": 20}
    assert balancer(_eps(1, 1, locality_weight=None), client="grpc").choose() is None


@pytest.mark.parametrize("health", ["unhealthy", "timeout", "draining", "degraded"])
def test_only_healthy_and_unknown_endpoints_are_kept(health: str) -> None:
    """Health other than HEALTHY/UNKNOWN drops the endpoint; all dropped -> no host (no panic)."""
    endpoints = [
        Ep("10.0.0.1:80", health="unknown", locality_weight=1),
        Ep("10.0.0.2:80", health=health, locality_weight=1),
    ]
    assert counts(balancer(endpoints, client="grpc"), 10) == {"10.0.0.1:80": 10}
    all_bad = [Ep("10.0.0.2:80", health=health, locality_weight=1)]
    assert balancer(all_bad, client="grpc").choose() is None
    assert balancer(all_bad).choose() is not None  # Envoy: total panic


def test_first_priority_with_endpoints_takes_everything() -> None:
    """No overprovisioning: 1 of 2 P0 endpoints left -> P0 still gets 100 % (Envoy: 70 %)."""
    endpoints = [
        Ep("10.0.0.1:80", locality_weight=1),
        Ep("10.0.0.2:80", health="unhealthy", locality_weight=1),
        Ep("10.0.1.1:80", priority=1, locality_weight=1),
    ]
    assert counts(balancer(endpoints, client="grpc"), 100) == {"10.0.0.1:80": 100}
    failover = [Ep("10.0.0.2:80", health="unhealthy", locality_weight=1), endpoints[2]]
    assert counts(balancer(failover, client="grpc"), 10) == {"10.0.1.1:80": 10}


def test_sparse_priorities_are_rejected() -> None:
    """grpc NACKs a CLA whose priorities skip a level."""
    with pytest.raises(BalancerError, match="sparse priority list"):
        balancer([Ep("10.0.0.1:80", priority=1, locality_weight=1)], client="grpc")


@pytest.mark.parametrize("policy", ["LEAST_REQUEST", "RANDOM", "MAGLEV"])
def test_unsupported_enum_policies_are_nacked(policy: str) -> None:
    """LEAST_REQUEST, RANDOM and MAGLEV: the whole cluster is rejected with grpc's message."""
    with pytest.raises(BalancerError) as caught:
        balancer(_eps(1), policy, client="grpc")
    assert str(caught.value) == (
        "errors validating Cluster resource: [field:lb_policy error:LB policy is not supported]"
    )


def test_murmur_ring_hash_is_nacked() -> None:
    """RING_HASH with MURMUR_HASH_2 is rejected (gRPC only implements XX_HASH)."""
    c = cluster("RING_HASH")
    c.ring_hash_lb_config.hash_function = 1
    with pytest.raises(BalancerError, match="invalid hash function"):
        build_balancer(c, cla(_eps(1)), client="grpc")
    typed = ring_hash_pb2.RingHash(hash_function=ring_hash_pb2.RingHash.MURMUR_HASH_2)
    with pytest.raises(BalancerError, match="hash_function error:invalid hash function"):
        build_balancer(cluster(typed=[typed]), cla(_eps(1)), client="grpc")


def test_typed_list_first_supported_entry_wins() -> None:
    """[maglev, ring_hash, round_robin]: Envoy runs Maglev, gRPC skips to ring_hash."""
    typed = [maglev_pb2.Maglev(), ring_hash_pb2.RingHash(), round_robin_pb2.RoundRobin()]
    envoy = build_balancer(cluster(typed=typed), cla(_eps(1, 1)))
    grpc = build_balancer(cluster(typed=typed), cla(_eps(1, 1)), client="grpc")
    assert isinstance(envoy, HashBalancer)
    assert envoy.settings.kind is Kind.MAGLEV
    assert isinstance(grpc, GrpcBalancer)
    assert grpc.settings.kind is Kind.RING_HASH


def test_typed_list_with_nothing_supported_is_nacked() -> None:
    """Only Maglev listed: gRPC finds no supported policy."""
    with pytest.raises(BalancerError, match="no supported load balancing policy config found"):
        build_balancer(cluster(typed=[maglev_pb2.Maglev()]), cla(_eps(1)), client="grpc")


def test_wrr_locality_wrapping_round_robin() -> None:
    """wrr_locality(round_robin) is what ROUND_ROBIN means for gRPC: locality-weighted RR."""
    wrapper = wrr_locality_pb2.WrrLocality()
    wrapper.endpoint_picking_policy.policies.add().typed_extension_config.typed_config.Pack(
        round_robin_pb2.RoundRobin()
    )
    lb = build_balancer(cluster(typed=[wrapper]), cla(_eps(1, 5)), client="grpc")
    assert lb.settings.wrr_locality
    assert counts(lb, 10) == {"10.0.0.1:80": 5, "10.0.0.2:80": 5}


def test_ring_hash_weights_are_endpoint_times_locality_weight() -> None:
    """Ring weights = endpoint weight x locality weight, normalized over the priority."""
    endpoints = [
        Ep("10.0.0.1:80", 2, zone="a", locality_weight=1),
        Ep("10.0.1.1:80", 1, zone="b", locality_weight=6),
    ]
    lb = balancer(endpoints, "RING_HASH", client="grpc")
    assert isinstance(lb, GrpcBalancer)
    assert {w.key: w.weight for w in lb.weighted_hosts} == pytest.approx(
        {"10.0.0.1:80": 0.25, "10.0.1.1:80": 0.75}
    )


def test_ring_is_capped_at_4096() -> None:
    """Weights 1:10000 need a 10001-entry ring in Envoy; gRPC caps it at 4096."""
    endpoints = [
        Ep("10.0.0.1:80", 1, locality_weight=1),
        Ep("10.0.0.2:80", 10_000, locality_weight=1),
    ]
    envoy = balancer(endpoints, "RING_HASH")
    grpc = balancer(endpoints, "RING_HASH", client="grpc")
    assert isinstance(envoy, HashBalancer)
    assert isinstance(grpc, GrpcBalancer)
    assert envoy.tables[0].size == 10_001
    assert grpc.table is not None
    assert grpc.table.size == 4096


def test_ring_hash_is_deterministic_for_a_hash() -> None:
    """The same hash picks the same endpoint on every channel; no hash is random."""
    a = balancer(_eps(1, 1, 1), "RING_HASH", client="grpc", seed=1)
    b = balancer(_eps(1, 1, 1), "RING_HASH", client="grpc", seed=2)
    hashes = [xxh64(f"user-{i}") for i in range(500)]
    assert [str(a.choose(h)) for h in hashes] == [str(b.choose(h)) for h in hashes]
    spread = Counter(str(a.choose()) for _ in range(3000))
    assert len(spread) == 3


def test_pick_first_sends_everything_to_the_first_endpoint() -> None:
    """Typed pick_first (gRPC only): every RPC goes to the first endpoint."""
    from envoy.extensions.load_balancing_policies.pick_first.v3 import pick_first_pb2

    lb = build_balancer(
        cluster(typed=[pick_first_pb2.PickFirst()]),
        cla(_eps(1, 1, 1)),
        client="grpc",
        rng=random.Random(1),
    )
    assert counts(lb, 10) == {"10.0.0.1:80": 10}
