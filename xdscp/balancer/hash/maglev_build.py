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


def fill(
    offsets: Sequence[int], skips: Sequence[int], weights: Sequence[float], size: int
) -> tuple[list[int], list[int]]:
    """Fill a table of `size` slots; return (entry index per slot, slots per entry).

    Entries are given in Envoy's order (sorted by hash key); weights are normalized.
    """
    max_weight = max(weights)
    table: list[int | None] = [None] * size
    positions = list(offsets)
    targets = [0.0] * len(offsets)
    counts = [0] * len(offsets)
    parked: dict[int, list[int]] = {}
    # Each iteration fills at least one slot (a max-weight entry is always eligible), so no
    # entry can be served after iteration `size`.
    last = size
    current = list(range(len(offsets)))
    filled = 0
    iteration = 1
    while filled < size:
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
            resume = _next_iteration(iteration + 1, weight, target, last)
            if resume is not None:
                parked.setdefault(resume, []).append(entry)
        iteration += 1
        waiting = parked.pop(iteration, None)
        current = sorted(following + waiting) if waiting else following
    return [entry for entry in table if entry is not None], counts
