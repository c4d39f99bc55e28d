"""Choosing a priority for one request, from the priority load (Envoy's `choosePriority`).

The load itself (per-priority healthy and degraded percentages, panic) is Envoy's arithmetic
in `xdscp.model.priority_load`, shared with the gRPC failover translation.
"""

from __future__ import annotations

from xdscp.model import PriorityLoad


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
