"""The Maglev table fill (maglev_lb.cc `constructImplementationInternals`), made fast in CPython.

Envoy's loop, for entries in key order:

    for iteration = 1, 2, ...:            # until the table is full
        for each entry e:
            if iteration * e.weight < e.target: continue
            e.target += max_weight
            claim the first free slot of (e.offset + e.skip * e.next) % M, advancing e.next

We produce the identical table with two changes that do not alter any decision:

- An entry that is not eligible in an iteration is not visited; instead, when it claims a slot,
  the next iteration in which `iteration * weight >= target` holds is computed exactly (same
  floating-point expressions, checked both ways) and the entry is parked until then. Entries of
  an iteration are still served in key order. This turns the O(iterations x hosts) scan of a
  lopsided table (1 heavy host, 1023 light ones: 65,000 x 1024 visits) into O(M).
- Permutation positions advance by adding `skip` and subtracting M instead of recomputing
  `(offset + skip * next) % M`, which gives the same positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


def _next_iteration(start: int, weight: float, target: float, last: int) -> int | None:
    """Smallest iteration >= start with `iteration * weight >= target`, or None after `last`."""
    estimate = target / weight
    if estimate > last + 2:
        return None
    iteration = max(start, int(estimate))
    while iteration > start and (iteration - 1) * weight >= target:
        iteration -= 1
    while iteration * weight < target:
        iteration += 1
    return iteration if iteration <= last else None


@dataclass(slots=True)
class _Fill:
    """The table being filled: its slots, each entry's next permutation position, target and
    slot count, and the entries parked until a later iteration."""

    skips: Sequence[int]
    weights: Sequence[float]
    max_weight: float
    slots: list[int | None]
    positions: list[int]
    targets: list[float]
    counts: list[int]
    parked: dict[int, list[int]] = field(default_factory=dict)
    filled: int = 0


def fill(
    offsets: Sequence[int], skips: Sequence[int], weights: Sequence[float], size: int
) -> tuple[list[int], list[int]]:
    """Fill a table of `size` slots; return (entry index per slot, slots per entry).

    Entries are given in Envoy's order (sorted by hash key); weights are normalized.
    """
    entries = len(offsets)
    state = _Fill(
        skips, weights, max(weights), [None] * size, list(offsets), [0.0] * entries, [0] * entries
    )
    current = list(range(entries))
    iteration = 1
    while state.filled < size:
        following = _serve(state, current, iteration)
        iteration += 1
        waiting = state.parked.pop(iteration, None)
        current = sorted(following + waiting) if waiting else following
    return [entry for entry in state.slots if entry is not None], state.counts


def _serve(state: _Fill, current: list[int], iteration: int) -> list[int]:
    """One iteration: each entry of `current`, in key order, claims its next free slot.
    Returns the entries eligible in the next iteration; the others are parked until theirs.
    Each iteration fills at least one slot (a max-weight entry is always eligible), so no
    entry can be served after iteration `size`."""
    table, positions, skips, weights = state.slots, state.positions, state.skips, state.weights
    targets, counts, parked = state.targets, state.counts, state.parked
    max_weight = state.max_weight
    size, filled = len(table), state.filled
    following: list[int] = []
    for entry in current:
        if filled == size:
            break
        skip = skips[entry]
        slot = positions[entry]
        while table[slot] is not None:
            slot += skip
            if slot >= size:
                slot -= size
        table[slot] = entry
        slot += skip
        positions[entry] = slot - size if slot >= size else slot
        counts[entry] += 1
        filled += 1
        target = targets[entry] + max_weight
        targets[entry] = target
        weight = weights[entry]
        if (iteration + 1) * weight >= target:
            following.append(entry)
            continue
        resume = _next_iteration(iteration + 1, weight, target, size)
        if resume is not None:
            parked.setdefault(resume, []).append(entry)
    state.filled = filled
    return following
