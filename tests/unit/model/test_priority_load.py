"""Envoy's priority loads and panic (spec §1), with expected values computed by hand from
Envoy's integer formulas:

    H[p] = min(100, OF*healthy // n)        D[p] = min(100, OF*degraded // n)
    NTA  = min(100, sum(H) + sum(D))
    HL[p] = min(remaining, H[p]*100 // NTA)  then DL[p] likewise; remainder to first p with H>0
    panic[p] = NTA != 100 and healthy% + degraded% < T
    all in panic: HL[p] = 100*|hosts_p| // total

T is the cluster's `healthy_panic_threshold` as Envoy's `convertPercent` makes it an integer.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.model import (
    Endpoint,
    Health,
    PriorityCounts,
    availability,
    panic_threshold_percent,
    priority_loads,
)

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


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)),
        min_size=1,
        max_size=5,
    ),
    overprovisioning=st.integers(1, 400),
    threshold=st.integers(0, 100),
)
def test_loads_always_sum_to_100(
    counts: list[tuple[int, int, int, int]], overprovisioning: int, threshold: int
) -> None:
    """Healthy + degraded loads sum to exactly 100, or are all 0 in Envoy's corner case (no
    priority has availability and not all panic; Envoy then falls back to P0). Load never goes
    to a priority without healthy/degraded availability unless every priority is in panic."""
    priorities = []
    for hosts, excluded, healthy, degraded in counts:
        total = hosts + excluded + healthy + degraded
        priorities.append(PriorityCounts(total, excluded, healthy, degraded))
    load = priority_loads(priorities, overprovisioning=overprovisioning, panic_threshold=threshold)
    available = [availability(c, overprovisioning) for c in priorities]
    nothing_available = not any(h or d for h, d in available)
    total = sum(load.healthy) + sum(load.degraded)
    assert total == 100 or (total == 0 and nothing_available and not all(load.panic))
    if not all(load.panic) and not nothing_available:
        for (h_avail, d_avail), h, d in zip(available, load.healthy, load.degraded, strict=True):
            assert h == 0 or h_avail > 0
            assert d == 0 or d_avail > 0


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        *[(0.0, 0), (33.0, 33), (33.5, 33), (33.9, 33), (49.5, 49), (50.0, 50), (100.0, 100)],
        *[(29.0, 28), (57.0, 56), (58.0, 57)],  # 100 * (p / 100.0) falls just short of p
    ],
)
def test_panic_threshold_truncates_like_convert_percent(percent: float, expected: int) -> None:
    """`healthy_panic_threshold` becomes `uint64(100 * (percent / 100.0))`: truncated, and
    with the double arithmetic's error (29 % is 28.999999999999996 -> 28), as a real Envoy
    measured (tests/integration/parity/test_translated.py)."""
    assert panic_threshold_percent(percent) == expected


@given(st.floats(0.0, 100.0))
def test_panic_threshold_never_rounds_up(percent: float) -> None:
    """Truncation: the integer threshold is at most the configured percent, and less than one
    (plus the double's error) below it."""
    threshold = panic_threshold_percent(percent)
    assert threshold <= percent
    assert percent - threshold < 1.000001


def test_counts_of_endpoints_by_health() -> None:
    """DRAINING endpoints are excluded; weights count only with `weighted`."""
    endpoints = [
        Endpoint("10.0.0.1", 80, weight=1),
        Endpoint("10.0.0.2", 80, weight=3, health=Health.UNHEALTHY),
        Endpoint("10.0.0.3", 80, weight=2, health=Health.DEGRADED),
        Endpoint("10.0.0.4", 80, weight=5, health=Health.DRAINING),
    ]
    assert PriorityCounts.of(endpoints) == PriorityCounts(4, 1, 1, 1)
    assert PriorityCounts.of(endpoints, weighted=True) == PriorityCounts(4, 1, 1, 1, 1, 2, 6)
