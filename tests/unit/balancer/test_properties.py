"""Properties over random endpoint sets (hypothesis)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.balancer import Ep, balancer, eps
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.envoy_lb import ZoneAwareBalancer
from xdscp.model import Health

HEALTHS = ["healthy", "unknown", "unhealthy", "timeout", "degraded", "draining"]
POLICIES = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"]


@st.composite
def endpoint_sets(draw: st.DrawFn) -> list[Ep]:
    """1-12 endpoints with random weights, health, zone and priority (0-2)."""
    size = draw(st.integers(1, 12))
    return [
        Ep(
            f"10.0.{i // 250}.{i % 250 + 1}:80",
            draw(st.integers(1, 20)),
            health=draw(st.sampled_from(HEALTHS)),
            zone=draw(st.sampled_from(["a", "b"])),
            priority=draw(st.integers(0, 2)),
            locality_weight=draw(st.sampled_from([None, 1, 3])),
        )
        for i in range(size)
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    endpoints=endpoint_sets(),
    policy=st.sampled_from(POLICIES),
    locality_weighted=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_picks_stay_in_the_eligible_set(
    endpoints: list[Ep], policy: str, locality_weighted: bool, seed: int
) -> None:
    """A pick comes from a priority with load; outside panic it is healthy (or degraded, and
    only when that priority has degraded load); DRAINING hosts are picked only in panic."""
    lb = balancer(endpoints, policy, seed=seed, locality_weighted=locality_weighted)
    assert isinstance(lb, ZoneAwareBalancer | HashBalancer)
    load = lb.load
    for _ in range(60):
        host = lb.choose()
        if host is None:
            continue
        p = host.priority
        assert load.healthy[p] + load.degraded[p] > 0
        if not load.panic[p]:
            allowed = {Health.HEALTHY} | ({Health.DEGRADED} if load.degraded[p] else set())
            assert host.health in allowed


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.integers(1, 9), min_size=2, max_size=6), seed=st.integers(0, 2**32))
def test_weighted_rr_shares_converge(weights: list[int], seed: int) -> None:
    """After 50 rounds of sum(weights) picks every host is within len(hosts) + 1 picks of its
    weighted share (EDF lag is bounded; ignoring weights would be off by a multiple of 50)."""
    lb = balancer(eps(*weights), seed=seed)
    total = sum(weights)
    rounds = 50
    seen = Counter(str(lb.choose()) for _ in range(rounds * total))
    for i, w in enumerate(weights, 1):
        assert abs(seen[f"10.0.0.{i}:80"] - rounds * w) <= len(weights) + 1


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(1, 9), min_size=2, max_size=6), seed=st.integers(0, 2**32))
def test_random_shares_ignore_weights(weights: list[int], seed: int) -> None:
    """RANDOM spreads evenly whatever the weights (within 6 sigma of n picks / hosts)."""
    lb = balancer(eps(*weights), "RANDOM", seed=seed)
    n = 3000
    seen = Counter(str(lb.choose()) for _ in range(n))
    p = 1 / len(weights)
    sigma = (n * p * (1 - p)) ** 0.5
    for i in range(1, len(weights) + 1):
        assert abs(seen[f"10.0.0.{i}:80"] - n * p) <= 6 * sigma


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(1, 9), min_size=1, max_size=6), seed=st.integers(0, 2**32))
def test_hash_tables_share_the_space_by_weight(weights: list[int], seed: int) -> None:
    """Maglev table shares are within 1 % of the normalized weights for 65537 slots."""
    lb = balancer(eps(*weights), "MAGLEV", seed=seed)
    assert isinstance(lb, HashBalancer)
    shares = lb.table_shares()
    for host in lb.hosts:
        assert abs(shares[host] - host.weight / sum(weights)) < 0.01
    rng = random.Random(seed)
    assert all(lb.choose(rng.getrandbits(64)) in shares for _ in range(50))


@settings(max_examples=100, deadline=None)
@given(
    endpoints=endpoint_sets(),
    policy=st.sampled_from(["ROUND_ROBIN", "RING_HASH"]),
    seed=st.integers(0, 2**32),
)
def test_grpc_picks_only_kept_endpoints_of_the_first_priority(
    endpoints: list[Ep], policy: str, seed: int
) -> None:
    """gRPC: a pick is HEALTHY/UNKNOWN, in a weighted locality, of the lowest priority that
    keeps any endpoint; nothing kept means no pick (there is no panic)."""
    group_weight: dict[tuple[str, int], int | None] = {}
    for e in endpoints:  # the builder gives each (zone, priority) group its first weight
        group_weight.setdefault((e.zone, e.priority), e.locality_weight)
    weighted = {p for (_, p), w in group_weight.items() if w is not None}
    kept = [
        e
        for e in endpoints
        if e.health in ("healthy", "unknown") and group_weight[(e.zone, e.priority)] is not None
    ]
    if weighted and weighted != set(range(max(weighted) + 1)):
        return  # a sparse priority list is rejected (tested elsewhere)
    lb = balancer(endpoints, policy, client="grpc", seed=seed)
    top = min((e.priority for e in kept), default=None)
    allowed = {e.address for e in kept if e.priority == top}
    for _ in range(40):
        host = lb.choose()
        if top is None:
            assert host is None
        else:
            assert str(host) in allowed
