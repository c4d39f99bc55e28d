"""Literal ports of Envoy's loops, kept deliberately naive, to check the fast versions against.

- `ketama_search`: `RingHashLoadBalancer::Ring::chooseHost` (ring_hash_lb.cc), signed
  binary search and all.
- `envoy_maglev`: `OriginalMaglevTable::constructImplementationInternals` (maglev_lb.cc),
  the full iteration x entries scan with `(offset + skip * next) % M` recomputed every probe.
- `murmur_bytewise`: MurmurHash64A with the tail handled byte by byte, as in Austin Appleby's
  reference `MurmurHash64A` (switch on `len & 7`).
"""

from __future__ import annotations

from collections.abc import Sequence

import xxhash

MASK = (1 << 64) - 1
MUL = 0xC6A4A7935BD1E995


def ketama_search(hashes: Sequence[int], h: int) -> int:
    """Index of the ring entry Envoy's ketama binary search returns for request hash `h`."""
    lowp, highp = 0, len(hashes)
    while True:
        midp = (lowp + highp) // 2
        if midp == len(hashes):
            return 0
        midval = hashes[midp]
        midval1 = 0 if midp == 0 else hashes[midp - 1]
        if midval1 < h <= midval:
            return midp
        if midval < h:
            lowp = midp + 1
        else:
            highp = midp - 1
        if lowp > highp:
            return 0


def envoy_maglev(keys: Sequence[str], weights: Sequence[float], size: int) -> list[int]:
    """The Maglev table as input positions, built exactly as Envoy's original loop does."""
    order = sorted(range(len(keys)), key=lambda i: keys[i].encode())
    offsets = [xxhash.xxh64_intdigest(keys[i].encode()) % size for i in order]
    skips = [xxhash.xxh64_intdigest(keys[i].encode(), 1) % (size - 1) + 1 for i in order]
    max_weight = max(weights)
    targets = [0.0] * len(order)
    nexts = [0] * len(order)
    table: list[int | None] = [None] * size
    filled = 0
    iteration = 1
    while filled < size:
        for i in range(len(order)):
            if filled >= size:
                break
            if iteration * weights[order[i]] < targets[i]:
                continue
            targets[i] += max_weight
            slot = (offsets[i] + skips[i] * nexts[i]) % size
            while table[slot] is not None:
                nexts[i] += 1
                slot = (offsets[i] + skips[i] * nexts[i]) % size
            table[slot] = order[i]
            nexts[i] += 1
            filled += 1
        iteration += 1
    return [slot for slot in table if slot is not None]


def murmur_bytewise(data: bytes, seed: int = 0xC70F6907) -> int:
    """MurmurHash64A written the textbook way."""
    length = len(data)
    h = (seed ^ (length * MUL)) & MASK
    blocks = length // 8
    for block in range(blocks):
        k = int.from_bytes(data[block * 8 : block * 8 + 8], "little")
        k = (k * MUL) & MASK
        k ^= k >> 47
        k = (k * MUL) & MASK
        h ^= k
        h = (h * MUL) & MASK
    tail = data[blocks * 8 :]
    if tail:
        for position in range(len(tail) - 1, -1, -1):
            h ^= tail[position] << (8 * position)
        h = (h * MUL) & MASK
    h ^= h >> 47
    h = (h * MUL) & MASK
    h ^= h >> 47
    return h
