"""ROUND_ROBIN, LEAST_REQUEST and RANDOM as Envoy runs them (spec §3-§5)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2

from tests.harness.balancer import Ep, balancer, cla, cluster, counts, eps
from xdscp.balancer import build_balancer
from xdscp.balancer.edf import EdfScheduler
from xdscp.balancer.envoy_lb import LeastRequestBalancer, RoundRobinBalancer


@pytest.mark.parametrize("seed", range(25))
def test_weighted_rr_exact_over_every_ten_sequential_requests(seed: int) -> None:
    """Weights 1:2:7 give exactly 1/2/7 picks in every window of 10 sequential requests."""
    lb = balancer(eps(1, 2, 7), seed=seed)
    sequence = [str(lb.choose()) for _ in range(200)]
    for start in range(len(sequence) - 10 + 1):
        window = Counter(sequence[start : start + 10])
        assert window == {"10.0.0.1:80": 1, "10.0.0.2:80": 2, "10.0.0.3:80": 7}


def test_weighted_rr_is_the_seeded_edf_sequence() -> None:
    """The pick sequence is exactly create_with_picks(hosts, weight, seed) picked in order."""
    lb = balancer(eps(3, 1, 4, 1, 5), seed=11)
    assert isinstance(lb, RoundRobinBalancer)
    hosts = list(lb.hosts)
    reference = EdfScheduler.create_with_picks(hosts, lambda h: float(h.weight), lb.seed)
    expected = [reference.pick_and_add(lambda h: float(h.weight)) for _ in range(100)]
    assert [lb.choose() for _ in range(100)] == expected


def test_equal_weights_rotate_from_the_seed() -> None:
    """Equal weights: hosts[(seed + i) % n], no EDF scheduler."""
    lb = balancer(eps(5, 5, 5, 5), seed=4)
    assert isinstance(lb, RoundRobinBalancer)
    hosts = list(lb.hosts)
    assert [lb.choose() for _ in range(9)] == [hosts[(lb.seed + i) % 4] for i in range(9)]


def test_typed_round_robin_equals_enum() -> None:
    """A typed RoundRobin policy picks exactly like lb_policy ROUND_ROBIN for the same seed."""
    typed = build_balancer(
        cluster(typed=[round_robin_pb2.RoundRobin()]), cla(eps(1, 2, 7)), rng=random.Random(9)
    )
    enum = build_balancer(cluster(), cla(eps(1, 2, 7)), rng=random.Random(9))
    assert [str(typed.choose()) for _ in range(30)] == [str(enum.choose()) for _ in range(30)]


def test_locality_weighted_rr_splits_by_locality_weight() -> None:
    """locality_weighted_lb_config: locality EDF 1:3, then RR inside (weights ignored across)."""
    endpoints = [
        Ep("10.0.0.1:80", 5, zone="a", locality_weight=1),
        Ep("10.0.1.1:80", 1, zone="b", locality_weight=3),
        Ep("10.0.1.2:80", 1, zone="b", locality_weight=3),
    ]
    seen = counts(balancer(endpoints, locality_weighted=True), 400)
    assert seen == {"10.0.0.1:80": 100, "10.0.1.1:80": 150, "10.0.1.2:80": 150}


def test_locality_effective_weight_shrinks_with_unhealthy_hosts() -> None:
    """Effective weight lw * min(1, 1.4 * healthy/n): zone b with 1 of 4 healthy weighs
    3 * 0.35 = 1.05 against zone a's 1 -> shares 1/2.05 and 1.05/2.05 (panic disabled: only
    2 of 5 hosts are healthy)."""
    endpoints = [Ep("10.0.0.1:80", zone="a", locality_weight=1)] + [
        Ep(
            f"10.0.1.{i}:80",
            zone="b",
            locality_weight=3,
            health="healthy" if i == 1 else "unhealthy",
        )
        for i in range(1, 5)
    ]
    seen = counts(balancer(endpoints, locality_weighted=True, panic=0.0), 4100)
    assert seen["10.0.0.1:80"] == pytest.approx(4100 / 2.05, abs=2)
    assert seen["10.0.1.1:80"] == pytest.approx(4100 * 1.05 / 2.05, abs=2)


def test_locality_without_weight_gets_nothing_when_locality_weighted() -> None:
    """A locality with no weight has effective weight 0 and is never picked."""
    endpoints = [Ep("10.0.0.1:80", zone="a", locality_weight=2), Ep("10.0.1.1:80", zone="b")]
    assert counts(balancer(endpoints, locality_weighted=True), 50) == {"10.0.0.1:80": 50}


def test_random_ignores_endpoint_weights() -> None:
    """RANDOM: 1:2:7 weights still give ~1/3 each."""
    seen = counts(balancer(eps(1, 2, 7), "RANDOM", seed=5), 30_000)
    for key in ("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"):
        assert seen[key] / 30_000 == pytest.approx(1 / 3, abs=0.015)


def test_random_uses_one_value_for_priority_and_host() -> None:
    """The same 64-bit value picks the priority and then hosts[value % n]."""
    lb = balancer(eps(1, 1, 1), "RANDOM", seed=8)
    replay = random.Random(8)
    replay.getrandbits(64)  # the seed drawn at construction
    hosts = list(lb.hosts)
    for _ in range(50):
        assert lb.choose() is hosts[replay.getrandbits(64) % 3]


def _busy(lb: LeastRequestBalancer, address: str, active: int) -> None:
    for host in lb.hosts:
        if str(host) == address:
            for _ in range(active):
                lb.start(host)


@pytest.mark.parametrize(("choice_count", "expected"), [(2, 1 / 4), (3, 1 / 8)])
def test_p2c_prefers_idle_hosts(choice_count: int, expected: float) -> None:
    """Equal weights, one busy host of 2: it wins only when every sample is it (1/2**N)."""
    lb = build_balancer(
        cluster(typed=[least_request_pb2.LeastRequest(choice_count={"value": choice_count})]),
        cla(eps(1, 1)),
        rng=random.Random(2),
    )
    assert isinstance(lb, LeastRequestBalancer)
    _busy(lb, "10.0.0.1:80", 3)
    seen = counts(lb, 40_000)
    assert seen["10.0.0.1:80"] / 40_000 == pytest.approx(expected, abs=0.01)


def test_p2c_ties_keep_the_first_sample() -> None:
    """With all hosts idle P2C is uniform (ties keep the first sample)."""
    seen = counts(balancer(eps(1, 1, 1, 1), "LEAST_REQUEST", seed=6), 40_000)
    for count in seen.values():
        assert count / 40_000 == pytest.approx(0.25, abs=0.01)


def test_weighted_least_request_divides_weight_by_active_plus_one() -> None:
    """Unequal weights: EDF over weight/(active+1): weights 1 and 2, host 2 with 3 active
    -> effective 1 and 0.5 -> shares 2/3 and 1/3."""
    lb = balancer(eps(1, 2), "LEAST_REQUEST", seed=3)
    assert isinstance(lb, LeastRequestBalancer)
    _busy(lb, "10.0.0.2:80", 3)
    seen = counts(lb, 3000)
    assert seen["10.0.0.1:80"] == pytest.approx(2000, abs=3)


def test_configured_bias_forces_edf_even_with_equal_weights() -> None:
    """active_request_bias set: EDF over weight/(active+1)**bias even with equal weights;
    host 1 with 1 active weighs 1/2 -> exactly a third of the picks (P2C would give 1/4)."""
    config = least_request_pb2.LeastRequest()
    config.active_request_bias.default_value = 1.0
    lb = build_balancer(cluster(typed=[config]), cla(eps(1, 1)), rng=random.Random(1))
    assert isinstance(lb, LeastRequestBalancer)
    _busy(lb, "10.0.0.1:80", 1)
    seen = counts(lb, 3000)
    assert seen["10.0.0.1:80"] == pytest.approx(1000, abs=3)


def test_bias_zero_ignores_active_requests() -> None:
    """active_request_bias 0: weight/(active+1)**0 = weight, so 1:3 holds however busy."""
    config = least_request_pb2.LeastRequest()
    config.active_request_bias.default_value = 0.0
    lb = build_balancer(cluster(typed=[config]), cla(eps(1, 3)), rng=random.Random(1))
    assert isinstance(lb, LeastRequestBalancer)
    _busy(lb, "10.0.0.2:80", 50)
    assert counts(lb, 400) == {"10.0.0.1:80": 100, "10.0.0.2:80": 300}


def test_finish_releases_active_requests() -> None:
    """start/finish track active requests; finish never goes below zero."""
    lb = balancer(eps(1, 1), "LEAST_REQUEST")
    host = lb.hosts[0]
    lb.start(host)
    lb.start(host)
    lb.finish(host)
    assert host.active == 1
    lb.finish(host)
    lb.finish(host)
    assert host.active == 0


def test_full_scan_picks_the_least_loaded() -> None:
    """selection_method FULL_SCAN: always a host with the fewest active requests."""
    config = least_request_pb2.LeastRequest(
        selection_method=least_request_pb2.LeastRequest.FULL_SCAN
    )
    lb = build_balancer(cluster(typed=[config]), cla(eps(1, 1, 1)), rng=random.Random(1))
    for host in lb.hosts[:2]:
        lb.start(host)
    assert {str(lb.choose()) for _ in range(50)} == {"10.0.0.3:80"}


def test_empty_cla_chooses_nothing() -> None:
    """No endpoints: every policy returns None, as Envoy has no host."""
    for policy in ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"):
        assert balancer([], policy).choose() is None
