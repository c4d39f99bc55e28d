"""Envoy's priority spill, computed for proxyless gRPC clients.

Envoy moves traffic off a priority as it loses healthy hosts (overprovisioning factor 140 by
default: a priority with 1 of 3 hosts healthy keeps 46 % and spills 54 % to the next) and, when
too little is healthy anywhere, balances a priority over all its hosts (panic). gRPC clients
implement neither: they send everything to the first priority that has a usable endpoint.

`spill_groups` takes Envoy's priority loads (`xdscp.model.priority_load`, the arithmetic the
reference balancer uses too) and, when the traffic is split over priorities, between healthy
and degraded hosts, or goes to a priority in panic, returns one group per (priority, locality,
health class) with the share of requests Envoy sends it. The gRPC translation sends those
groups as the localities of a single priority whose weights are the shares: gRPC picks a
locality by weight, then an endpoint inside it, so both kinds of client end up with the same
shares. None means Envoy's whole load goes to the healthy hosts of one priority, the case gRPC
already handles (today's priority list, kept for connectivity failover).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby

from xdscp.model import (
    Endpoint,
    Health,
    Locality,
    PriorityCounts,
    PriorityLoad,
    Service,
    panic_threshold_percent,
    priority_loads,
)

UINT32_MAX = 0xFFFFFFFF
RESOLUTION = 1_000_000  # total locality weight when exact integer weights would not fit

Unit = Callable[[Endpoint], int]
"""How much of a priority's load Envoy gives one endpoint, relative to its peers (1: equal)."""


@dataclass(frozen=True, slots=True)
class SpillGroup:
    """Endpoints of one priority and locality that Envoy sends `share` of the requests
    (`Fraction`, the groups' shares sum to 1); `kind` is healthy, degraded or panic."""

    priority: int
    locality: Locality
    kind: str
    endpoints: tuple[Endpoint, ...]
    share: Fraction


def envoy_loads(
    priorities: Sequence[Sequence[Endpoint]], overprovisioning: int, panic_threshold: float
) -> PriorityLoad:
    """Envoy's priority loads for the endpoints of priorities 0..N (empty lists for gaps), with
    the cluster's `healthy_panic_threshold` as Envoy turns it into an integer."""
    return priority_loads(
        [PriorityCounts.of(level) for level in priorities],
        overprovisioning=overprovisioning,
        panic_threshold=panic_threshold_percent(panic_threshold),
    )


def _by_priority(service: Service) -> list[list[Endpoint]]:
    top = max((e.priority for e in service.endpoints), default=0)
    levels: list[list[Endpoint]] = [[] for _ in range(top + 1)]
    for endpoint in service.endpoints:
        levels[endpoint.priority].append(endpoint)
    return levels


def _needs_spill(loads: PriorityLoad) -> bool:
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


def _plan(loads: PriorityLoad, priority: int, *, hashing: bool) -> list[tuple[str, int]]:
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
    policy = service.policy
    every_host_healthy = all(e.health is Health.HEALTHY for e in service.endpoints)
    if service.endpoints and every_host_healthy and policy.overprovisioning_factor >= 100:
        return None  # priority 0 is whole: all its load stays on its healthy hosts
    levels = _by_priority(service)
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
