"""Envoy's consistent-hash tables: the ring (ring_hash_lb.cc) and Maglev (maglev_lb.cc).

Both take the hosts of one priority as `WeightedKey`s (hash key, normalized weight, host) in
Envoy's host order and reproduce Envoy's table exactly, so `lookup(h)` returns the host Envoy
picks for request hash `h`. Weights are normalized the way Envoy normalizes them
(`normalize_weights`, thread_aware_lb_impl.cc): `weight * locality_share / sum(weights)`.

Where Envoy's result is unspecified we pick a deterministic rule and say so:
- ring entries with equal hashes (a 64-bit collision) keep host order (Envoy's `std::sort` is
  not stable);
- Maglev hosts with equal hash keys keep host order (Envoy then orders by pointer address).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import xxhash

from xdscp.balancer.hash import maglev_build
from xdscp.balancer.hash.functions import murmur2_64a, xxh64
from xdscp.errors import ValidationError
from xdscp.model import HashFunction, is_prime

H = TypeVar("H")

_RING_SPACE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class WeightedKey(Generic[H]):
    """One host as the hash tables see it: its hash key, normalized weight and the host itself.

    `key` is the endpoint's `hash_key` metadata if set, else its `ip:port` (`[v6]:port`).
    `weight` is normalized: the weights of one table sum to 1 (see `normalize_weights`).
    """

    key: str
    weight: float
    host: H


def normalize_weights(
    hosts: Sequence[tuple[str, int, H]], *, locality_share: float = 1.0
) -> list[WeightedKey[H]]:
    """Envoy's `normalizeHostWeights`: each `(key, weight, host)` gets `weight * share / sum`.

    For locality-weighted hashing call it once per locality with
    `locality_share = locality_weight / sum(locality weights)` (skipping weight-0 localities)
    and concatenate the results in locality order.
    """
    total = sum(weight for _, weight, _ in hosts)
    return [WeightedKey(key, weight * locality_share / total, host) for key, weight, host in hosts]


def _check_weights(hosts: Sequence[WeightedKey[H]]) -> None:
    for entry in hosts:
        if not (math.isfinite(entry.weight) and 0.0 < entry.weight <= 1.0):
            raise ValidationError("weight", f"must be a normalized weight in (0, 1], got {entry}")
        if not entry.key:
            raise ValidationError("key", "hash keys must be non-empty")


def _ring_hasher(hash_function: HashFunction | str) -> Callable[[bytes], int]:
    try:
        function = HashFunction(hash_function)
    except ValueError:
        allowed = ", ".join(f.value for f in HashFunction)
        raise ValidationError(
            "hash_function", f"must be one of {allowed}, got {hash_function!r}"
        ) from None
    return murmur2_64a if function is HashFunction.MURMUR_HASH_2 else xxhash.xxh64_intdigest


class RingHashTable(Generic[H]):
    """Envoy's ketama-style hash ring (`RingHashLoadBalancer::Ring`).

    `scale = min(ceil(min_w * min_ring_size) / min_w, max_ring_size)`; walking the hosts in
    order with running sums `target += scale * w`, each host adds entries hashed from
    `"{key}_{i}"` while `current < target`. Entries are sorted by hash and a lookup takes the
    first entry whose hash is >= the request hash, wrapping to entry 0.
    """

    __slots__ = ("_hashes", "_hosts", "_indexes", "max_hashes_per_host", "min_hashes_per_host")

    def __init__(
        self,
        hosts: Sequence[WeightedKey[H]],
        *,
        min_ring_size: int,
        max_ring_size: int,
        hash_function: HashFunction | str,
    ) -> None:
        # The proto's 1..8388608 range is enforced where the config is read (Envoy skips it
        # for typed configs inside load_balancing_policy); the ring itself only needs order.
        if not 0 <= min_ring_size <= max_ring_size:
            raise ValidationError(
                "min_ring_size",
                f"need 0 <= min_ring_size ({min_ring_size}) <= max_ring_size ({max_ring_size})",
            )
        _check_weights(hosts)
        hasher = _ring_hasher(hash_function)
        self._hashes = array("Q")
        self._hosts: list[H] = []
        self._indexes = array("L")
        self.min_hashes_per_host = 0
        self.max_hashes_per_host = 0
        if hosts:
            self._build(hosts, min_ring_size, max_ring_size, hasher)

    def _build(
        self,
        hosts: Sequence[WeightedKey[H]],
        min_ring_size: int,
        max_ring_size: int,
        hasher: Callable[[bytes], int],
    ) -> None:
        min_weight = min(entry.weight for entry in hosts)
        scale = min(math.ceil(min_weight * min_ring_size) / min_weight, float(max_ring_size))
        # Entries are packed as `hash << shift | host index` so one int sort orders them by
        # hash, then host order: half the memory and time of sorting (hash, index) tuples.
        shift = max(1, (len(hosts) - 1).bit_length())
        packed: list[int] = []
        per_host: list[int] = []
        current = 0  # Envoy keeps a double; it only ever holds small whole numbers
        target = 0.0
        for index, entry in enumerate(hosts):
            target += scale * entry.weight
            count = max(0, math.ceil(target) - current)
            prefix = entry.key.encode() + b"_"
            packed.extend(hasher(b"%s%d" % (prefix, i)) << shift | index for i in range(count))
            current += count
            per_host.append(count)
        packed.sort()
        mask = (1 << shift) - 1
        self._hashes = array("Q", [value >> shift for value in packed])
        self._indexes = array("L", [value & mask for value in packed])
        del packed
        self._hosts = [hosts[index].host for index in self._indexes]
        self.min_hashes_per_host = min(per_host)
        self.max_hashes_per_host = max(per_host)

    @property
    def size(self) -> int:
        """Number of entries on the ring (Envoy's `ring_hash_lb.size` gauge)."""
        return len(self._hashes)

    @property
    def hashes(self) -> Sequence[int]:
        """The sorted entry hashes (for inspection and tests)."""
        return self._hashes

    def lookup(self, hash_value: int, attempt: int = 0) -> H | None:
        """The host for a request hash in [0, 2**64); None when the ring is empty.

        `attempt` > 0 steps that many entries further round the ring, as Envoy does when a
        retry host predicate rejects the previous pick.
        """
        hashes = self._hashes
        if not hashes:
            return None
        index = bisect_left(hashes, hash_value)
        if index == len(hashes):
            index = 0
        if attempt:
            index = (index + attempt) % len(hashes)
        return self._hosts[index]

    def shares(self, host_count: int) -> list[float]:
        """Fraction of the 64-bit hash space each input host owns, by input position."""
        shares = [0.0] * host_count
        hashes = self._hashes
        if not hashes:
            return shares
        previous = hashes[-1] - (1 << 64)
        for value, index in zip(hashes, self._indexes, strict=True):
            shares[index] += (value - previous) / _RING_SPACE
            previous = value
        return shares


class MaglevTable(Generic[H]):
    """Envoy's Maglev lookup table (`OriginalMaglevTable`; Compact gives the same table).

    Hosts are sorted by hash key; each has `offset = XXH64(key) % M` and
    `skip = XXH64(key, seed=1) % (M - 1) + 1`. Round after round, a host whose
    `round * weight >= target` claims the next free slot of its permutation
    `(offset + skip * next) % M` and adds the maximum weight to its target, until the table is
    full. A lookup is `table[h % M]`. One host is Envoy's degenerate table: always that host.
    """

    __slots__ = ("_modulus", "_table", "counts", "table_size")

    def __init__(self, hosts: Sequence[WeightedKey[H]], *, table_size: int) -> None:
        # Envoy checks the <= 5000011 limit on maglev_lb_config only, primality always.
        if not is_prime(table_size):
            raise ValidationError("table_size", f"must be a prime number, got {table_size}")
        _check_weights(hosts)
        self.table_size = table_size
        self.counts: list[int] = [0] * len(hosts)
        """Table slots per input host, by input position (Envoy's entries-per-host gauges)."""
        self._table: list[H] = []
        self._modulus = table_size
        if len(hosts) == 1:
            self._table = [hosts[0].host]
            self._modulus = 1
            self.counts = [1]
        elif hosts:
            self._build(hosts)

    def _build(self, hosts: Sequence[WeightedKey[H]]) -> None:
        size = self.table_size
        order = sorted(range(len(hosts)), key=lambda i: hosts[i].key.encode())
        keys = [hosts[i].key.encode() for i in order]
        offsets = [xxh64(key) % size for key in keys]
        skips = [xxh64(key, 1) % (size - 1) + 1 for key in keys]
        weights = [hosts[i].weight for i in order]
        slots, counts = maglev_build.fill(offsets, skips, weights, size)
        self._table = [hosts[order[slot]].host for slot in slots]
        for position, count in enumerate(counts):
            self.counts[order[position]] = count

    @property
    def size(self) -> int:
        """Number of slots (the configured prime table size)."""
        return self.table_size

    def lookup(self, hash_value: int, attempt: int = 0) -> H | None:
        """The host for a request hash in [0, 2**64); None when the table is empty.

        `attempt` > 0 XORs the hash with `2**64 - attempt`, as Envoy does for retries.
        """
        table = self._table
        if not table:
            return None
        if attempt:
            hash_value ^= (1 << 64) - attempt
        return table[hash_value % self._modulus]

    def shares(self, host_count: int) -> list[float]:
        """Fraction of table slots each input host owns, by input position."""
        if len(self.counts) != host_count:
            raise ValidationError("host_count", f"table has {len(self.counts)} hosts")
        slots = 1 if self._modulus == 1 else self.table_size
        return [count / slots for count in self.counts]
