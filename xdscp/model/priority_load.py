"""Envoy's priority loads and panic, with its integer arithmetic (load_balancer_impl.cc).

`priority_loads` turns per-priority host counts into the percentage of requests each priority
receives on its healthy and on its degraded hosts, and which priorities are in panic (balanced
over all their hosts). The reference balancer picks with it; the gRPC translation reproduces
Envoy's spill with it (`xdscp.translate.failover`), so both read one rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from xdscp.model.service import Health

DEFAULT_PANIC_THRESHOLD = 50
DEFAULT_OVERPROVISIONING = 140


class WeightedHost(Protocol):
    """What the arithmetic reads from a host: its weight and health (EDS `health_status`)."""

    @property
    def weight(self) -> int:
        """The endpoint's load-balancing weight."""
        ...

    @property
    def health(self) -> Health:
        """HEALTHY, UNHEALTHY, DEGRADED or DRAINING (excluded)."""
        ...


def panic_threshold_percent(percent: float) -> int:
    """The integer threshold Envoy uses for `healthy_panic_threshold` (a `Percent` double).

    PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT(..., 100, 50) calls `convertPercent`, which
    returns `max_value * (percent / 100.0)` as uint64: truncated, not rounded (33.9 gives 33),
    with the double arithmetic's own error kept (57 gives 56).
    """
    return min(100, int(100 * (percent / 100.0)))


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
    def of(cls, hosts: Sequence[WeightedHost], *, weighted: bool = False) -> PriorityCounts:
        """Counts of one priority's hosts (DRAINING ones are excluded); with `weighted` (CLA
        `weighted_priority_health`) also their weights."""
        by_health = {kind: [h for h in hosts if h.health is kind] for kind in Health}
        excluded = by_health[Health.DRAINING]
        healthy, degraded = by_health[Health.HEALTHY], by_health[Health.DEGRADED]
        counts = (len(hosts), len(excluded), len(healthy), len(degraded))
        if not weighted:
            return cls(*counts)
        total = sum(h.weight for h in hosts) - sum(h.weight for h in excluded)
        weights = (sum(h.weight for h in healthy), sum(h.weight for h in degraded), total)
        return cls(*counts, *weights)


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


def in_panic(counts: PriorityCounts, threshold: int) -> bool:
    """Envoy's `isHostSetInPanic`: (healthy% + degraded%) of non-excluded hosts < threshold."""
    n = counts.hosts - counts.excluded
    healthy = 0.0 if n == 0 else 100.0 * counts.healthy / n
    degraded = 0.0 if n == 0 else 100.0 * counts.degraded / n
    return healthy + degraded < threshold


def priority_loads(
    counts: Sequence[PriorityCounts],
    *,
    overprovisioning: int = DEFAULT_OVERPROVISIONING,
    panic_threshold: int = DEFAULT_PANIC_THRESHOLD,
) -> PriorityLoad:
    """Envoy's recalculatePerPriorityState + recalculatePerPriorityPanic, all priorities at once.

    `panic_threshold` is the integer percent (`panic_threshold_percent` of the cluster's
    `healthy_panic_threshold`, default 50).
    """
    size = len(counts)
    health = [availability(c, overprovisioning) for c in counts]
    nta = min(100, sum(h + d for h, d in health))
    healthy_load, degraded_load = _distribute_all(health, nta)
    threshold = min(100, panic_threshold)
    if threshold == 0 and nta == 0:
        healthy_load[0] = 100
        return PriorityLoad(tuple(healthy_load), tuple(degraded_load), (False,) * size)
    panic = tuple(nta != 100 and in_panic(c, threshold) for c in counts)
    if all(panic):
        healthy_load, degraded_load = _total_panic_loads(counts)
    return PriorityLoad(tuple(healthy_load), tuple(degraded_load), panic)


def _distribute_all(health: Sequence[tuple[int, int]], nta: int) -> tuple[list[int], list[int]]:
    """100 % over the priorities' healthy, then degraded availability; the rounding remainder
    to the first priority with healthy (else degraded) availability."""
    healthy_avail = [h for h, _ in health]
    degraded_avail = [d for _, d in health]
    if nta == 0:
        return [0] * len(health), [0] * len(health)
    healthy_load, remaining = _distribute(healthy_avail, 100, nta)
    degraded_load, remaining = _distribute(degraded_avail, remaining, nta)
    if remaining:
        first = _first_positive(healthy_avail)
        if first >= 0:
            healthy_load[first] += remaining
        else:
            degraded_load[_first_positive(degraded_avail)] += remaining
    return healthy_load, degraded_load


def _distribute(availability_: Sequence[int], total_load: int, nta: int) -> tuple[list[int], int]:
    loads = []
    for value in availability_:
        load = min(total_load, value * 100 // nta)
        loads.append(load)
        total_load -= load
    return loads, total_load


def _first_positive(values: Sequence[int]) -> int:
    return next((i for i, v in enumerate(values) if v > 0), -1)


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
