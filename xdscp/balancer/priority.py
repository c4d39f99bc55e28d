"""Priority loads and panic, with Envoy's integer arithmetic (load_balancer_impl.cc).

`priority_loads` turns per-priority host counts into the percentage of requests each priority
receives on its healthy and on its degraded hosts, and which priorities are in panic (balanced
over all their hosts). `choose_priority` maps a random or hash value onto those percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdscp.balancer.hosts import HostSet


@dataclass(frozen=True, slots=True)
class PriorityCounts:
    """What the arithmetic needs from one priority: host counts (or weights) by health."""

    hosts: int
    excluded: int
    healthy: int
    degraded: int
    healthy_weight: int | None = None
    degraded_weight: int | None = None
    available_weight: int | None = None

    @classmethod
    def of(cls, host_set: HostSet, *, weighted: bool = False) -> PriorityCounts:
        """Counts of a host set; with `weighted` (CLA `weighted_priority_health`) also weights."""
        if not weighted:
            return cls(
                len(host_set.hosts),
                len(host_set.excluded),
                len(host_set.healthy),
                len(host_set.degraded),
            )
        total = sum(h.weight for h in host_set.hosts) - sum(h.weight for h in host_set.excluded)
        return cls(
            len(host_set.hosts),
            len(host_set.excluded),
            len(host_set.healthy),
            len(host_set.degraded),
            sum(h.weight for h in host_set.healthy),
            sum(h.weight for h in host_set.degraded),
            total,
        )


@dataclass(frozen=True, slots=True)
class PriorityLoad:
    """Per-priority healthy and degraded load percentages (summing to 100) and panic flags."""

    healthy: tuple[int, ...]
    degraded: tuple[int, ...]
    panic: tuple[bool, ...]


def availability(counts: PriorityCounts, overprovisioning: int) -> tuple[int, int]:
    """`(H, D) = (min(100, OF*healthy // n), min(100, OF*degraded // n))`, 0 when n == 0."""
    if counts.hosts - counts.excluded <= 0:
        return 0, 0
    if counts.available_weight is not None:
        total = counts.available_weight
        healthy, degraded = counts.healthy_weight or 0, counts.degraded_weight or 0
    else:
        total = counts.hosts - counts.excluded
        healthy, degraded = counts.healthy, counts.degraded
    return min(100, overprovisioning * healthy // total), min(
        100, overprovisioning * degraded // total
    )


def _distribute(availability_: Sequence[int], total_load: int, nta: int) -> tuple[list[int], int]:
    loads = []
    for value in availability_:
        load = min(total_load, value * 100 // nta)
        loads.append(load)
        total_load -= load
    return loads, total_load


def _first_positive(values: Sequence[int]) -> int:
    return next((i for i, v in enumerate(values) if v > 0), -1)


def in_panic(counts: PriorityCounts, threshold: int) -> bool:
    """Envoy's `isHostSetInPanic`: (healthy% + degraded%) of non-excluded hosts < threshold."""
    n = counts.hosts - counts.excluded
    healthy = 0.0 if n == 0 else 100.0 * counts.healthy / n
    degraded = 0.0 if n == 0 else 100.0 * counts.degraded / n
    return healthy + degraded < threshold


def priority_loads(
    counts: Sequence[PriorityCounts], *, overprovisioning: int = 140, panic_threshold: int = 50
) -> PriorityLoad:
    """Envoy's recalculatePerPriorityState + recalculatePerPriorityPanic, all priorities at once.

    `panic_threshold` is the rounded integer percent (`healthy_panic_threshold`, default 50).
    """
    size = len(counts)
    health = [availability(c, overprovisioning) for c in counts]
    healthy_avail = [h for h, _ in health]
    degraded_avail = [d for _, d in health]
    nta = min(100, sum(healthy_avail) + sum(degraded_avail))
    healthy_load, degraded_load = [0] * size, [0] * size
    if nta > 0:
        healthy_load, remaining = _distribute(healthy_avail, 100, nta)
        degraded_load, remaining = _distribute(degraded_avail, remaining, nta)
        if remaining:
            first = _first_positive(healthy_avail)
            if first >= 0:
                healthy_load[first] += remaining
            else:
                degraded_load[_first_positive(degraded_avail)] += remaining
    threshold = min(100, panic_threshold)
    if threshold == 0 and nta == 0:
        healthy_load[0] = 100
        return PriorityLoad(tuple(healthy_load), tuple(degraded_load), (False,) * size)
    panic = tuple(nta != 100 and in_panic(c, threshold) for c in counts)
    if all(panic):
        healthy_load, degraded_load = _total_panic_loads(counts)
    return PriorityLoad(tuple(healthy_load), tuple(degraded_load), panic)


def _total_panic_loads(counts: Sequence[PriorityCounts]) -> tuple[list[int], list[int]]:
    """Every priority in panic: load by share of all hosts, regardless of health."""
    size = len(counts)
    total = sum(c.hosts for c in counts)
    healthy, degraded = [0] * size, [0] * size
    if total == 0:
        healthy[0] = 100
        return healthy, degraded
    for i, c in enumerate(counts):
        healthy[i] = 100 * c.hosts // total
    healthy[_first_positive([c.hosts for c in counts])] += 100 - sum(healthy)
    return healthy, degraded


def choose_priority(value: int, load: PriorityLoad) -> tuple[int, bool]:
    """`(priority, degraded)` for a random or hash value: `x = value % 100 + 1` walked over the
    cumulative healthy loads, then the degraded loads."""
    x = value % 100 + 1
    total = 0
    for priority, share in enumerate(load.healthy):
        total += share
        if x <= total:
            return priority, False
    for priority, share in enumerate(load.degraded):
        total += share
        if x <= total:
            return priority, True
    return 0, False
