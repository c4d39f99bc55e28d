"""Envoy's priority spill, computed for proxyless gRPC clients.

Envoy moves traffic off a priority as it loses healthy hosts (overprovisioning factor 140 by
default: a priority with 1 of 3 hosts healthy keeps 46 % and spills 54 % to the next) and, when
too little is healthy anywhere, balances a priority over all its hosts (panic). gRPC clients
implement neither: they send everything to the first priority that has a usable endpoint.

`spill_groups` reproduces Envoy's integer arithmetic (load_balancer_impl.cc:
recalculatePerPriorityState, recalculatePerPriorityPanic) and, when the traffic is split over
priorities, between healthy and degraded hosts, or goes to a priority in panic, returns one
group per (priority, locality, health class) with the share of requests Envoy sends it. The
gRPC translation sends those groups as the localities of a single priority whose weights are
the shares: gRPC picks a locality by weight, then an endpoint inside it, so both kinds of
client end up with the same shares. None means Envoy's whole load goes to the healthy hosts of
one priority, the case gRPC already handles (today's priority list, kept for connectivity
failover).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby

from xdscp.model import Endpoint, Health, Locality, Service

UINT32_MAX = 0xFFFFFFFF
RESOLUTION = 1_000_000  # total locality weight when exact integer weights would not fit

Unit = Callable[[Endpoint], int]
"""How much of a priority's load Envoy gives one endpoint, relative to its peers (1: equal)."""


@dataclass(frozen=True, slots=True)
class Loads:
    """Envoy's per-priority healthy and degraded loads (percent, summing to 100) and panic."""

    healthy: tuple[int, ...]
    degraded: tuple[int, ...]
    panic: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class SpillGroup:
    """Endpoints of one priority and locality that Envoy sends `share` of the requests
    (`Fraction`, the groups' shares sum to 1); `kind` is healthy, degraded or panic."""

    priority: int
    locality: Locality
    kind: str
    endpoints: tuple[Endpoint, ...]
    share: Fraction


def _counts(endpoints: Sequence[Endpoint]) -> tuple[int, int, int]:
    """(non-excluded hosts, healthy, degraded) of one priority; DRAINING is excluded."""
    excluded = sum(1 for e in endpoints if e.health is Health.DRAINING)
    healthy = sum(1 for e in endpoints if e.health is Health.HEALTHY)
    degraded = sum(1 for e in endpoints if e.health is Health.DEGRADED)
    return len(endpoints) - excluded, healthy, degraded


def _distribute(values: Sequence[int], total: int, nta: int) -> tuple[list[int], int]:
    loads = []
    for value in values:
        load = min(total, value * 100 // nta)
        loads.append(load)
        total -= load
    return loads, total


def envoy_loads(
    priorities: Sequence[Sequence[Endpoint]], overprovisioning: int, panic_threshold: float
) -> Loads:
    """Envoy's priority loads for the endpoints of priorities 0..N (empty lists for gaps)."""
    counts = [_counts(p) for p in priorities]
    avail = [
        (min(100, overprovisioning * h // n), min(100, overprovisioning * d // n)) if n else (0, 0)
        for n, h, d in counts
    ]
    healthy_avail, degraded_avail = [a for a, _ in avail], [b for _, b in avail]
    nta = min(100, sum(healthy_avail) + sum(degraded_avail))
    size = len(priorities)
    healthy, degraded = [0] * size, [0] * size
    if nta > 0:
        healthy, rest = _distribute(healthy_avail, 100, nta)
        degraded, rest = _distribute(degraded_avail, rest, nta)
        if rest:
            first = next((i for i, v in enumerate(healthy_avail) if v > 0), -1)
            if first >= 0:
                healthy[first] += rest
            else:
                degraded[next(i for i, v in enumerate(degraded_avail) if v > 0)] += rest
    threshold = min(100, math.floor(panic_threshold + 0.5))
    if threshold == 0 and nta == 0:
        healthy[0] = 100
        return Loads(tuple(healthy), tuple(degraded), (False,) * size)
    panic = tuple(
        nta != 100 and (100.0 * h / n if n else 0.0) + (100.0 * d / n if n else 0.0) < threshold
        for n, h, d in counts
    )
    if all(panic):
        healthy, degraded = _by_host_count(priorities), [0] * size
    return Loads(tuple(healthy), tuple(degraded), panic)


def _by_host_count(priorities: Sequence[Sequence[Endpoint]]) -> list[int]:
    total = sum(len(p) for p in priorities)
    loads = [100 * len(p) // total if total else 0 for p in priorities]
    first = next((i for i, p in enumerate(priorities) if p), 0)
    loads[first] += 100 - sum(loads)
    return loads


def _by_priority(service: Service) -> list[list[Endpoint]]:
    top = max((e.priority for e in service.endpoints), default=0)
    levels: list[list[Endpoint]] = [[] for _ in range(top + 1)]
    for endpoint in service.endpoints:
        levels[endpoint.priority].append(endpoint)
    return levels


def _needs_spill(loads: Loads) -> bool:
    used = [p for p, load in enumerate(loads.healthy) if load]
    return (
        len(used) != 1
        or any(loads.degraded)
        or any(loads.panic[p] for p, load in enumerate(loads.healthy) if load)
    )


def _source(level: Sequence[Endpoint], kind: str) -> list[Endpoint]:
    if kind == "panic":
        return list(level)
    wanted = Health.HEALTHY if kind == "healthy" else Health.DEGRADED
    return [e for e in level if e.health is wanted]


def _plan(loads: Loads, priority: int, *, hashing: bool) -> list[tuple[str, int]]:
    """(host class, load) pairs of one priority. Envoy's hash tables hold the healthy hosts
    only (all hosts in panic): there the degraded load lands on the healthy hosts too."""
    healthy, degraded = loads.healthy[priority], loads.degraded[priority]
    if loads.panic[priority]:
        return [("panic", healthy + degraded)]
    if hashing:
        return [("healthy", healthy + degraded)]
    return [("healthy", healthy), ("degraded", degraded)]


def spill_groups(service: Service, unit: Unit) -> list[SpillGroup] | None:
    """The groups Envoy spreads `service`'s requests over, with their shares; None when all
    of them go to the healthy hosts of one priority (no spill, no panic)."""
    levels = _by_priority(service)
    policy = service.policy
    loads = envoy_loads(levels, policy.overprovisioning_factor, policy.panic_threshold)
    if not _needs_spill(loads):
        return None
    groups = []
    for priority, level in enumerate(levels):
        for kind, load in _plan(loads, priority, hashing=policy.is_hashing):
            source = _source(level, kind)
            total = sum(unit(e) for e in source)
            if not load or not total:
                continue
            for locality, members in groupby(source, key=lambda e: e.locality):
                group = tuple(members)
                share = Fraction(load, 100) * Fraction(sum(unit(e) for e in group), total)
                groups.append(SpillGroup(priority, locality, kind, group, share))
    return groups


def integer_weights(values: Sequence[Fraction], *, cap: int = UINT32_MAX) -> list[int]:
    """Positive integers proportional to `values` (exactly when they fit: every one and their
    sum at most `cap`), else rounded to `RESOLUTION` parts, never below 1."""
    scale = math.lcm(*(v.denominator for v in values))
    exact = [int(v * scale) for v in values]
    divisor = math.gcd(*exact)
    exact = [x // divisor for x in exact]
    if sum(exact) <= cap:
        return exact
    total = sum(values)
    resolution = max(1, min(RESOLUTION, cap // max(1, len(values))))
    return [max(1, round(v / total * resolution)) for v in values]
