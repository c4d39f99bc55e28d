"""Tables share traffic in proportion to weight, and consistent hashing moves few keys.

Tolerances are derived, not tuned:

- Maglev, equal weights: every entry is eligible in every round, so rounds are round robin and
  each host ends with floor(M/n) or ceil(M/n) slots. Exact.
- Maglev, weights w (sum 1, max m): after I full rounds a host has floor(I*w/m) + 1 slots; the
  slots add up to M, so I/m lies within n of M - n, and the last round may be partial. Hence
  |slots - M*w| <= 2 + 2*n*w (the 2 covers the partial round and float ties).
- Ring: a host with k entries owns the sum of k arcs between uniformly scattered points, each
  about Exp(1/N); the share's relative standard deviation is 1/sqrt(k). We allow 4 sigma:
  |share/w - 1| <= 4/sqrt(k). The keys are fixed, so the check is deterministic.
- Remapping one host out of n: consistent tables move the departing host's ~1/n of keys plus
  a little churn (the ring is rescaled, so every remaining host gains entries that capture
  arcs; Maglev permutations shift slightly), bounded by 2/n; modulo moves all keys whose
  `h mod n != h mod (n-1)`, about 1 - 1/n, so at least 1 - 2/n.
"""

from __future__ import annotations

import math

import pytest

from xdscp.balancer.hash.modulo import (
    HashLookup,
    ModuloTable,
    remapped_fraction,
    sample_hashes,
)
from xdscp.balancer.hash.tables import MaglevTable, RingHashTable, normalize_weights
from xdscp.model import ENVOY_MAX_RING, HashFunction

KEYS = [f"10.1.{i // 200}.{i % 200 + 1}:8080" for i in range(101)]


@pytest.mark.parametrize("count", [3, 10, 100])
def test_maglev_equal_weights_split_exactly(count: int) -> None:
    """Equal weights give every host floor(M/n) or ceil(M/n) of 65537 slots."""
    table = MaglevTable(normalize_weights([(k, 1, k) for k in KEYS[:count]]), table_size=65537)
    low, high = 65537 // count, -(-65537 // count)
    assert set(table.counts) <= {low, high}
    assert sum(table.counts) == 65537


def test_maglev_weighted_slots_follow_weights() -> None:
    """Weights 1..10: each host's slots are within 2 + 2*n*w of M*w."""
    hosts = normalize_weights([(k, i + 1, k) for i, k in enumerate(KEYS[:10])])
    table = MaglevTable(hosts, table_size=65537)
    for host, slots in zip(hosts, table.counts, strict=True):
        assert abs(slots - 65537 * host.weight) <= 2 + 2 * 10 * host.weight
    shares = table.shares(len(hosts))
    assert math.isclose(sum(shares), 1.0)


@pytest.mark.parametrize("function", list(HashFunction))
def test_ring_shares_follow_weights(function: HashFunction) -> None:
    """Weights 1..8 on a 65536 ring: each host's arc share is within 4/sqrt(k) of its weight."""
    hosts = normalize_weights([(k, i + 1, k) for i, k in enumerate(KEYS[:8])])
    ring = RingHashTable(
        hosts, min_ring_size=65536, max_ring_size=ENVOY_MAX_RING, hash_function=function
    )
    shares = ring.shares(len(hosts))
    assert math.isclose(sum(shares), 1.0)
    min_weight = min(h.weight for h in hosts)
    scale = math.ceil(min_weight * 65536) / min_weight
    for host, share in zip(hosts, shares, strict=True):
        entries = scale * host.weight
        assert abs(share / host.weight - 1) <= 4 / math.sqrt(entries)


def _tables(keys: list[str]) -> dict[str, HashLookup[str]]:
    hosts = normalize_weights([(k, 1, k) for k in keys])
    ring = RingHashTable(
        hosts, min_ring_size=1024, max_ring_size=ENVOY_MAX_RING, hash_function=HashFunction.XX_HASH
    )
    maglev = MaglevTable(hosts, table_size=65537)
    return {"ring": ring, "maglev": maglev, "modulo": ModuloTable(keys)}


@pytest.mark.parametrize(
    ("name", "change"),
    [("remove_last", KEYS[:9]), ("remove_middle", KEYS[:4] + KEYS[5:10]), ("add", KEYS[:11])],
)
def test_consistent_hashing_moves_few_keys_modulo_moves_most(name: str, change: list[str]) -> None:
    """One host more or less out of 10: ring and Maglev move <= 2/n of keys, modulo >= 1 - 2/n."""
    before, after = _tables(KEYS[:10]), _tables(change)
    sample = sample_hashes(20000)
    n = 10
    for kind in ("ring", "maglev"):
        moved = remapped_fraction(before[kind], after[kind], sample)
        assert 1 / (n + 1) - 0.02 <= moved <= 2 / n, (name, kind, moved)
    moved = remapped_fraction(before["modulo"], after["modulo"], sample)
    assert moved >= 1 - 2 / n, (name, moved)


def test_removing_a_ring_host_moves_all_of_its_keys() -> None:
    """Every key the removed host owned now goes elsewhere; nothing goes to a missing host."""
    before, after = _tables(KEYS[:10]), _tables(KEYS[:9])
    ring_before, ring_after = before["ring"], after["ring"]
    assert isinstance(ring_before, RingHashTable)
    assert isinstance(ring_after, RingHashTable)
    for value in sample_hashes(5000):
        assert ring_after.lookup(value) in KEYS[:9]
        if ring_before.lookup(value) != KEYS[9]:
            continue
        assert ring_after.lookup(value) != KEYS[9]


def test_modulo_table_and_source_ip_pick() -> None:
    """Modulo picks hosts[h % n]; by source IP it hashes the IP text without the port."""
    table = ModuloTable(["a", "b", "c"])
    assert [table.lookup(h) for h in range(4)] == ["a", "b", "c", "a"]
    assert table.pick_for_source_ip("10.0.0.1:5555") == table.pick_for_source_ip("10.0.0.1")
    assert ModuloTable([]).lookup(3) is None
