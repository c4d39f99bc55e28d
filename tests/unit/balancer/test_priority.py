"""Priority loads and panic (spec §1), with expected values computed by hand from Envoy's
integer formulas:

    H[p] = min(100, OF*healthy // n)        D[p] = min(100, OF*degraded // n)
    NTA  = min(100, sum(H) + sum(D))
    HL[p] = min(remaining, H[p]*100 // NTA)  then DL[p] likewise; remainder to first p with H>0
    panic[p] = NTA != 100 and healthy% + degraded% < T
    all in panic: HL[p] = 100*|hosts_p| // total
"""

from __future__ import annotations

import pytest

from tests.unit.balancer.builders import Ep, balancer, cla, counts
from xdscp.balancer.priority import PriorityCounts, choose_priority, priority_loads

C = PriorityCounts


@pytest.mark.parametrize(
    ("priorities", "overprovisioning", "threshold", "healthy", "degraded", "panic"),
    [
        # all healthy: H = min(100, 140*10//10) = 100
        ([C(10, 0, 10, 0)], 140, 50, (100,), (0,), (False,)),
        # 71 of 100 healthy, P1 healthy: H0 = 140*71//100 = 99 -> [99, 1] (Envoy docs table)
        ([C(100, 0, 71, 0), C(4, 0, 4, 0)], 140, 50, (99, 1), (0, 0), (False, False)),
        # 1 of 2 healthy: H0 = 70 -> [70, 30]
        ([C(2, 0, 1, 0), C(4, 0, 4, 0)], 140, 50, (70, 30), (0, 0), (False, False)),
        # 1 of 4: H0 = 35 -> [35, 65]
        ([C(4, 0, 1, 0), C(4, 0, 4, 0)], 140, 50, (35, 65), (0, 0), (False, False)),
        # 71 % healthy, 29 % degraded: H = 99, D = 40, NTA = 100 -> 99 healthy, 1 degraded
        ([C(100, 0, 71, 29)], 140, 50, (99,), (1,), (False,)),
        # 25 % / 65 % / 10 % unhealthy: H = 35, D = 91 -> 35 healthy, 65 degraded
        ([C(100, 0, 25, 65)], 140, 50, (35,), (65,), (False,)),
        # 5 % healthy: NTA = 7 != 100 and 5 % < 50 -> panic; total panic -> 100 by hosts
        ([C(100, 0, 5, 0)], 140, 50, (100,), (0,), (True,)),
        # both in panic, 3 vs 7 hosts: total panic -> 100*3//10 = 30, 100*7//10 = 70
        ([C(3, 0, 0, 0), C(7, 0, 1, 0)], 140, 50, (30, 70), (0, 0), (True, True)),
        # Envoy's own example with OF 100 and no panic: 10/20/10 % healthy, 20/10/0 % degraded
        # NTA = 70: HL = 14, 28, 14; DL = 28, 14, 0; remainder 2 to P0 -> 16
        (
            [C(10, 0, 1, 2), C(10, 0, 2, 1), C(10, 0, 1, 0)],
            100,
            0,
            (16, 28, 14),
            (28, 14, 0),
            (False, False, False),
        ),
        # excluded hosts leave the denominator: 1 healthy of 3, 2 excluded -> n = 1, H = 100
        ([C(3, 2, 1, 0), C(2, 0, 2, 0)], 140, 50, (100, 0), (0, 0), (False, False)),
        # nothing available, threshold 0: no panic, 100 % to P0 (Envoy's corner case)
        ([C(2, 0, 0, 0), C(2, 0, 0, 0)], 140, 0, (100, 0), (0, 0), (False, False)),
        # no hosts anywhere: total panic with no hosts -> 100 % to P0
        ([C(0, 0, 0, 0)], 140, 50, (100,), (0,), (True,)),
        # one priority in panic, the other not: P0 H = 140*1//4 = 35, P1 H = 140*1//2 = 70
        # NTA = 100 -> no panic at all: [35, 65]
        ([C(4, 0, 1, 0), C(2, 0, 1, 0)], 140, 50, (35, 65), (0, 0), (False, False)),
        # P0 H = 14 (1/10), P1 H = 70 (1/2): NTA = 84; HL = 14*100//84 = 16, 70*100//84 = 83,
        # remainder 1 -> P0 = 17; P0 10 % < 50 panic, P1 50 % not < 50 -> not total panic
        ([C(10, 0, 1, 0), C(2, 0, 1, 0)], 140, 50, (17, 83), (0, 0), (True, False)),
    ],
)
def test_priority_loads(  # noqa: PLR0917 - one parameter per table column
    priorities: list[PriorityCounts],
    overprovisioning: int,
    threshold: int,
    healthy: tuple[int, ...],
    degraded: tuple[int, ...],
    panic: tuple[bool, ...],
) -> None:
    """Loads and panic flags equal the hand-computed values of Envoy's integer arithmetic."""
    load = priority_loads(priorities, overprovisioning=overprovisioning, panic_threshold=threshold)
    assert load.healthy == healthy
    assert load.degraded == degraded
    assert load.panic == panic
    assert sum(load.healthy) + sum(load.degraded) == 100


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
    weighted = priority_loads([C.of(s, weighted=True) for s in sets])
    unweighted = priority_loads([C.of(s) for s in sets])
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

    from tests.unit.balancer.builders import cluster
    from xdscp.balancer import build_balancer

    lb = build_balancer(cluster(), cla(endpoints, overprovisioning=100), rng=random.Random(1))
    assert lb.load.healthy == (50, 50)  # type: ignore[attr-defined]
