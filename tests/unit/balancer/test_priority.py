"""The balancers over priorities: choosing a priority by its load, spill, panic, and the CLA's
overprovisioning factor and weighted priority health (the load arithmetic itself is tested in
tests/unit/model/test_priority_load.py)."""

from __future__ import annotations

import pytest

from tests.harness.balancer import Ep, balancer, cla, counts
from xdscp.balancer.priority import choose_priority
from xdscp.model import PriorityCounts, priority_loads

C = PriorityCounts


def test_choose_priority_walks_cumulative_loads() -> None:
    """x = r % 100 + 1; x <= 70 -> P0, 71..100 -> P1; degraded after all healthy loads."""
    load = priority_loads([C(2, 0, 1, 0), C(4, 0, 4, 0)])
    assert [choose_priority(r, load) for r in (0, 69, 70, 99, 100, 169, 170)] == [
        (0, False),
        (0, False),
        (1, False),
        (1, False),
        (0, False),
        (0, False),
        (1, False),
    ]
    degraded = priority_loads([C(100, 0, 71, 29)])
    assert choose_priority(98, degraded) == (0, False)
    assert choose_priority(99, degraded) == (0, True)


def test_weighted_priority_health_uses_weights() -> None:
    """With weighted_priority_health, H uses weights: healthy weight 1 of 4 -> 140*1//4 = 35."""
    endpoints = [
        Ep("10.0.0.1:80", 1),
        Ep("10.0.0.2:80", 3, health="unhealthy"),
        Ep("10.0.1.1:80", 1, priority=1),
    ]
    message = cla(endpoints, weighted_priority_health=True)
    from xdscp.balancer.hosts import host_sets, hosts_from_cla

    sets = host_sets(hosts_from_cla(message))
    weighted = priority_loads([C.of(s.hosts, weighted=True) for s in sets])
    unweighted = priority_loads([C.of(s.hosts) for s in sets])
    assert weighted.healthy == (35, 65)
    assert unweighted.healthy == (70, 30)


def test_balancer_spills_to_next_priority_by_load() -> None:
    """1 of 2 P0 hosts healthy -> 70 % P0, 30 % P1 (RR, 20,000 random priority draws)."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="unhealthy"),
        Ep("10.0.1.1:80", priority=1),
    ]
    seen = counts(balancer(endpoints, seed=3), 20_000)
    assert "10.0.0.2:80" not in seen
    assert seen["10.0.0.1:80"] / 20_000 == pytest.approx(0.70, abs=0.02)
    assert seen["10.0.1.1:80"] / 20_000 == pytest.approx(0.30, abs=0.02)


def test_panic_balances_over_all_hosts_including_unhealthy() -> None:
    """1 of 3 healthy (33 % < 50 %) and no other priority: panic, RR over all three hosts."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="unhealthy"),
        Ep("10.0.0.3:80", health="timeout"),
    ]
    seen = counts(balancer(endpoints), 300)
    assert seen == {"10.0.0.1:80": 100, "10.0.0.2:80": 100, "10.0.0.3:80": 100}


def test_panic_threshold_zero_disables_panic() -> None:
    """healthy_panic_threshold 0: no panic, only the healthy host serves."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="unhealthy"),
        Ep("10.0.0.3:80", health="unhealthy"),
    ]
    seen = counts(balancer(endpoints, panic=0.0), 100)
    assert seen == {"10.0.0.1:80": 100}


def test_all_unhealthy_is_total_panic() -> None:
    """Every host unhealthy: total panic, traffic over all hosts (Envoy does not fail closed)."""
    endpoints = [Ep("10.0.0.1:80", health="unhealthy"), Ep("10.0.0.2:80", health="unhealthy")]
    assert counts(balancer(endpoints), 100) == {"10.0.0.1:80": 50, "10.0.0.2:80": 50}


def test_draining_hosts_are_excluded_from_the_denominator() -> None:
    """1 healthy + 2 DRAINING: n = 1, H = 100, no panic: the drained hosts get nothing."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="draining"),
        Ep("10.0.0.3:80", health="draining"),
    ]
    assert counts(balancer(endpoints), 50) == {"10.0.0.1:80": 50}


def test_overprovisioning_factor_from_cla() -> None:
    """OF 100 instead of 140: 1 of 2 healthy gives H = 50, so P0 gets 50 % (not 70 %)."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="unhealthy"),
        Ep("10.0.1.1:80", priority=1),
    ]
    import random

    from tests.harness.balancer import cluster
    from xdscp.balancer import build_balancer

    lb = build_balancer(cluster(), cla(endpoints, overprovisioning=100), rng=random.Random(1))
    assert lb.load.healthy == (50, 50)  # type: ignore[attr-defined]
