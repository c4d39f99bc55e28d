"""What changes a pick besides the policy: slow start, ejected hosts, bounded-load hashing."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness.balancer import Ep, cla, cluster, eps
from xdscp.balancer import build_balancer, expected_shares
from xdscp.balancer.bounded import MT19937, bounded_choice, overload_factor
from xdscp.balancer.slow_start import SlowStart, slow_start_factor
from xdscp.errors import BalancerError


@pytest.mark.parametrize(
    ("age", "aggression", "minimum", "factor"),
    [
        (2.5, 1.0, 10.0, 0.25),  # linear: 2.5 s of 10
        (2.5, 2.0, 10.0, 0.5),  # sqrt(0.25)
        (0.0, 1.0, 10.0, 0.1),  # max(1 ms / 10 s, 10 %)
        (0.0, 1.0, 0.0, 0.0001),  # 1 ms of 10 s, no floor
        (9.999, 1.0, 10.0, 0.9999),
        (10.0, 1.0, 10.0, 1.0),  # the window is over
        (None, 1.0, 10.0, 1.0),  # joined long ago
    ],
)
def test_slow_start_factor_is_envoys_formula(
    age: float | None, aggression: float, minimum: float, factor: float
) -> None:
    config = SlowStart(10.0, aggression, minimum)
    assert slow_start_factor(age, config) == pytest.approx(factor)


def test_slow_start_config_rejects_bad_values() -> None:
    with pytest.raises(Exception, match="window"):
        SlowStart(0.0)
    with pytest.raises(Exception, match="aggression"):
        SlowStart(1.0, aggression=0.0)


def _round_robin_slow_start(window_s: int = 10) -> object:
    config = round_robin_pb2.RoundRobin()
    config.slow_start_config.slow_start_window.seconds = window_s
    return cluster(typed=[config])


def test_round_robin_ramps_a_new_host_by_its_age() -> None:
    """Equal weights, one host 2.5 s into a 10 s window: EDF over 1 : 1 : 0.25."""
    lb = build_balancer(
        _round_robin_slow_start(), cla(eps(1, 1, 1)), rng=random.Random(3),
        ages={"10.0.0.3:80": 2.5},
    )  # fmt: skip
    seen = Counter(str(lb.choose()) for _ in range(900))
    assert seen == {"10.0.0.1:80": 400, "10.0.0.2:80": 400, "10.0.0.3:80": 100}
    assert expected_shares(lb)["10.0.0.3:80"] == pytest.approx(0.25 / 2.25)


def test_slow_start_only_for_healthy_hosts_and_after_the_window_is_plain() -> None:
    lb = build_balancer(
        _round_robin_slow_start(), cla(eps(1, 1)), rng=random.Random(3),
        ages={"10.0.0.2:80": 11.0},
    )  # fmt: skip
    assert expected_shares(lb) == {"10.0.0.1:80": 0.5, "10.0.0.2:80": 0.5}


def test_least_request_applies_slow_start_on_top_of_active_requests() -> None:
    config = least_request_pb2.LeastRequest()
    config.slow_start_config.slow_start_window.seconds = 10
    config.slow_start_config.aggression.default_value = 2.0
    lb = build_balancer(
        cluster(typed=[config]), cla(eps(1, 1)), rng=random.Random(3), ages={"10.0.0.2:80": 2.5}
    )
    host = lb.hosts[1]
    host.active = 1
    assert lb.host_weight(host) == pytest.approx(0.5 * 0.5)  # type: ignore[attr-defined]


def test_ejected_hosts_count_as_unhealthy_and_spill() -> None:
    """2 of 3 priority-0 hosts ejected: Envoy keeps 46 % there, 54 % to priority 1."""
    endpoints = [*eps(1, 1, 1), Ep("10.0.1.1:80", priority=1)]
    lb = build_balancer(cluster(), cla(endpoints), ejected={"10.0.0.1:80", "10.0.0.2:80"})
    assert expected_shares(lb) == pytest.approx({"10.0.0.3:80": 0.46, "10.0.1.1:80": 0.54})


def test_too_many_ejected_hosts_put_the_priority_in_panic() -> None:
    lb = build_balancer(cluster(), cla(eps(1, 1, 1)), ejected={"10.0.0.1:80", "10.0.0.2:80"})
    assert lb.load.panic == (True,)  # type: ignore[attr-defined]
    assert expected_shares(lb) == pytest.approx({str(h): 1 / 3 for h in lb.hosts})


def test_grpc_skips_ejected_hosts_and_draining_stays_excluded() -> None:
    lb = build_balancer(
        cluster(typed=[round_robin_pb2.RoundRobin()]),
        cla(
            [Ep(f"10.0.0.{i}:80", locality_weight=1) for i in (1, 2)]
            + [Ep("10.0.0.3:80", health="draining", locality_weight=1)]
        ),
        client="grpc",
        ejected={"10.0.0.1:80"},
    )
    assert expected_shares(lb) == {"10.0.0.2:80": 1.0}


def test_mt19937_matches_the_cpp_standard() -> None:
    """[rand.predef]: the 10000th output of a default-seeded std::mt19937 is 4123659995."""
    random_ = MT19937(5489)
    for _ in range(9999):
        random_()
    assert random_() == 4123659995


def test_overload_factor_is_active_over_slots() -> None:
    # total_slots = ((9 + 1) * 150 + 99) // 100 = 15; slots = ceil(15 * 0.5) = 8
    assert overload_factor(8, 9, 0.5, 150) == 1.0
    assert overload_factor(9, 9, 0.5, 150) == pytest.approx(9 / 8)
    assert overload_factor(0, 0, 0.001, 100) == 0.0  # at least one slot


# The key's host takes 3, then the overflow alternates with the host its seeded probe finds.
GOLDEN_HOT_KEY = [f"10.0.0.{i}:80" for i in (1, 1, 1, 3, 3, 1, 3, 3)]


def _ring_cluster(factor: int) -> object:
    ring = ring_hash_pb2.RingHash()
    ring.consistent_hashing_lb_config.hash_balance_factor.value = factor
    return cluster(typed=[ring])


def test_hot_key_overflow_is_bounded_and_deterministic() -> None:
    """One key, 30 concurrent requests, factor 150, 4 equal hosts: at pick time no host holds
    more than its slots (1.5 x the average, Envoy's measure); the overflow order is fixed by
    the key's hash, whatever the worker's seed."""
    lb = build_balancer(_ring_cluster(150), cla(eps(1, 1, 1, 1)), rng=random.Random(0))
    key = 0x1234_5678_9ABC_DEF0
    picks = []
    for _ in range(30):
        host = lb.choose(key)
        assert host is not None
        overall = sum(h.active for h in lb.hosts)
        assert overload_factor(host.active, overall, 0.25, 150) <= 1.0
        lb.start(host)
        picks.append(str(host))
    assert picks[:8] == GOLDEN_HOT_KEY
    assert Counter(picks) == {"10.0.0.1:80": 13, "10.0.0.3:80": 12, "10.0.0.2:80": 5}
    again = build_balancer(_ring_cluster(150), cla(eps(1, 1, 1, 1)), rng=random.Random(9))
    replay = []
    for _ in range(30):
        host = again.choose(key)
        assert host is not None
        again.start(host)
        replay.append(str(host))
    assert replay == picks


def test_no_balance_factor_keeps_every_request_on_the_key_host() -> None:
    lb = build_balancer(cluster("RING_HASH"), cla(eps(1, 1, 1)), rng=random.Random(0))
    hosts = set()
    for _ in range(20):
        host = lb.choose(42)
        assert host is not None
        lb.start(host)
        hosts.add(str(host))
    assert len(hosts) == 1


def test_grpc_ignores_balance_factor() -> None:
    ring = ring_hash_pb2.RingHash()
    ring.consistent_hashing_lb_config.hash_balance_factor.value = 120
    lb = build_balancer(cluster(typed=[ring]), cla(eps(1, 1)), client="grpc")
    assert lb.settings.hash_balance_factor is None


def test_bad_slow_start_window_in_a_cluster_is_a_balancer_error() -> None:
    config = round_robin_pb2.RoundRobin()
    config.slow_start_config.slow_start_window.nanos = 0
    config.slow_start_config.slow_start_window.seconds = 0
    with pytest.raises(BalancerError, match="window"):
        build_balancer(cluster(typed=[config]), cla(eps(1)))


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8),
    actives=st.lists(st.integers(0, 50), min_size=8, max_size=8),
    chosen=st.integers(0, 7),
    hash_value=st.integers(0, 2**64 - 1),
    factor=st.integers(100, 400),
)
def test_bounded_choice_picks_a_host_within_its_slots(
    weights: list[float], actives: list[int], chosen: int, hash_value: int, factor: int
) -> None:
    """Property: the chosen host is within its slots whenever one is (Envoy's guarantee);
    else the least overloaded; the table's pick when it is within its own."""
    total = sum(weights)
    hosts = [(i, w / total) for i, w in enumerate(weights)]
    chosen %= len(hosts)
    overall = sum(actives[: len(hosts)])
    picked = bounded_choice(
        chosen, hash_value, hosts, active=actives.__getitem__, overall_active=overall, factor=factor
    )
    factors = {h: overload_factor(actives[h], overall, w, factor) for h, w in hosts}
    if factors[chosen] <= 1.0:
        assert picked == chosen
    elif min(factors.values()) <= 1.0:
        assert factors[picked] <= 1.0
    else:
        assert factors[picked] == min(factors.values())
