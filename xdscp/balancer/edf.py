"""Envoy's earliest-deadline-first scheduler (source/common/upstream/edf_scheduler.h).

Each entry is due at `current_time + 1 / weight`; a pick takes the entry with the earliest
deadline (ties go to the entry added first), advances the clock to that deadline and re-adds
the entry with its weight at that moment. `create_with_picks` builds the scheduler Envoy builds:
as if `picks` picks had already been made, so each worker starts at a different point of the
same weighted sequence.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from xdscp.errors import BalancerError

E = TypeVar("E")

_PICKS_MODULUS = 429_496_729  # UINT32_MAX // 10: Envoy caps the emulated picks
_EPSILON = 1e-13  # added to every weight while emulating picks, as Envoy does


class EdfScheduler(Generic[E]):
    """A min-heap of `(deadline, order, entry)`: weighted round robin with float weights."""

    __slots__ = ("_heap", "_order", "current_time")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, E]] = []
        self._order = 0
        self.current_time = 0.0

    def add(self, weight: float, entry: E) -> None:
        """Insert `entry`, due at `current_time + 1 / weight`; weight must be positive."""
        if not weight > 0.0:
            raise BalancerError(f"EDF weights must be positive, got {weight}")
        heapq.heappush(self._heap, (self.current_time + 1.0 / weight, self._order, entry))
        self._order += 1

    def pick_and_add(self, weight_of: Callable[[E], float]) -> E | None:
        """Pop the earliest entry, re-add it with `weight_of(entry)` and return it."""
        heap = self._heap
        if not heap:
            return None
        deadline, _, entry = heap[0]
        self.current_time = deadline
        weight = weight_of(entry)
        heapq.heapreplace(heap, (deadline + 1.0 / weight, self._order, entry))
        self._order += 1
        return entry

    def __len__(self) -> int:
        return len(self._heap)

    @classmethod
    def create_with_picks(
        cls, entries: Sequence[E], weight_of: Callable[[E], float], seed: int
    ) -> EdfScheduler[E]:
        """Envoy's `createWithPicks`: the state after `(seed mod 2**32) % 429496729` picks.

        Each entry's share of the picks is emulated in one step (`floor(w_i * P / W)` with
        1e-13 added to every weight); the few picks left over are then made one by one.
        """
        scheduler: EdfScheduler[E] = cls()
        if not entries:
            return scheduler
        picks = (seed & 0xFFFFFFFF) % _PICKS_MODULUS
        weights = [weight_of(entry) + _EPSILON for entry in entries]
        if any(not w > _EPSILON for w in weights):
            raise BalancerError("EDF weights must be positive")
        total = 0.0
        for w in weights:
            total += w
        picks_so_far = 0
        max_pick_time = 0.0
        heap: list[tuple[float, int, E]] = []
        for order, (entry, w) in enumerate(zip(entries, weights, strict=True)):
            floor_picks = int(w * picks / total)
            if floor_picks > 0 and floor_picks / w >= picks / total:
                floor_picks -= 1
            heap.append(((floor_picks + 1) / w, order, entry))
            max_pick_time = max(max_pick_time, floor_picks / w)
            picks_so_far += floor_picks
        heapq.heapify(heap)
        scheduler._heap = heap
        scheduler._order = len(entries)
        scheduler.current_time = max_pick_time
        for _ in range(picks - picks_so_far):
            scheduler.pick_and_add(weight_of)
        return scheduler
