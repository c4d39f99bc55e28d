"""Properties of the tables over arbitrary host sets: exact, full, member-only, deterministic.

The fast builders are checked against literal ports of Envoy's loops (`reference.py`).
"""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.balancer.hash.reference import envoy_maglev, ketama_search
from xdscp.balancer.hash.tables import (
    MaglevTable,
    RingHashTable,
    WeightedKey,
    normalize_weights,
)
from xdscp.model import HashFunction

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
PRIMES = [2, 3, 5, 7, 11, 13, 17, 31, 101, 211, 1009]


@st.composite
def host_sets(draw: st.DrawFn, max_hosts: int = 12) -> list[WeightedKey[int]]:
    """Distinct keys with integer weights, some lopsided, optionally split into 2 localities."""
    count = draw(st.integers(min_value=1, max_value=max_hosts))
    ports = draw(st.lists(st.integers(1, 65535), min_size=count, max_size=count, unique=True))
    weights = draw(
        st.lists(st.sampled_from([1, 2, 3, 7, 100, 1000]), min_size=count, max_size=count)
    )
    raw = [
        (f"10.0.0.1:{port}", weight, i)
        for i, (port, weight) in enumerate(zip(ports, weights, strict=True))
    ]
    split = draw(st.integers(min_value=0, max_value=count))
    if 0 < split < count:
        share = draw(st.sampled_from([1, 3, 127]))
        total = share + 1
        return normalize_weights(raw[:split], locality_share=share / total) + normalize_weights(
            raw[split:], locality_share=1 / total
        )
    return normalize_weights(raw)


@settings(max_examples=150, deadline=None)
@given(host_sets(), st.sampled_from(PRIMES))
def test_maglev_equals_envoys_loop(hosts: list[WeightedKey[int]], size: int) -> None:
    """The fast fill gives exactly the table of Envoy's literal iteration x entries loop."""
    table = MaglevTable(hosts, table_size=size)
    expected = envoy_maglev([h.key for h in hosts], [h.weight for h in hosts], size)
    got = [table.lookup(i) for i in range(size)]
    if len(hosts) == 1:
        assert got == [0] * size  # Envoy's degenerate single-host table
    else:
        assert got == expected
        assert sum(table.counts) == size
        assert table.counts == [expected.count(i) for i in range(len(hosts))]


@settings(max_examples=100, deadline=None)
@given(host_sets(), st.sampled_from(PRIMES), st.lists(U64, max_size=20), st.randoms())
def test_maglev_full_members_and_order_free(
    hosts: list[WeightedKey[int]], size: int, probes: list[int], rnd: random.Random
) -> None:
    """Every slot holds an input host, lookups never miss, and host order does not matter."""
    table = MaglevTable(hosts, table_size=size)
    members = {h.host for h in hosts}
    assert all(table.lookup(i) in members for i in range(size))
    assert all(table.lookup(p) in members for p in probes)
    shuffled = hosts[:]
    rnd.shuffle(shuffled)
    again = MaglevTable(shuffled, table_size=size)
    assert [again.lookup(i) for i in range(size)] == [table.lookup(i) for i in range(size)]


@settings(max_examples=100, deadline=None)
@given(
    host_sets(),
    st.integers(min_value=1, max_value=3000),
    st.integers(min_value=0, max_value=3000),
    st.sampled_from(list(HashFunction)),
    st.lists(U64, max_size=30),
)
def test_ring_lookup_equals_ketama_and_returns_members(
    hosts: list[WeightedKey[int]],
    min_ring: int,
    extra: int,
    function: HashFunction,
    probes: list[int],
) -> None:
    """Lookups agree with Envoy's ketama search, also at entry hashes +-1, 0 and 2**64-1."""
    ring = RingHashTable(
        hosts, min_ring_size=min_ring, max_ring_size=min_ring + extra, hash_function=function
    )
    hashes = list(ring.hashes)
    assert hashes == sorted(hashes)
    edges = [0, (1 << 64) - 1] + [h + d for h in hashes[:50] for d in (-1, 0, 1)]
    members = {h.host for h in hosts}
    for probe in probes + [e for e in edges if 0 <= e < 1 << 64]:
        host = ring.lookup(probe)
        assert host in members
        assert host == ring.lookup(hashes[ketama_search(hashes, probe)])


@settings(max_examples=50, deadline=None)
@given(host_sets(), st.integers(min_value=1, max_value=2000))
def test_ring_is_deterministic_and_sized_by_scale(
    hosts: list[WeightedKey[int]], min_ring: int
) -> None:
    """Rebuilding gives the same ring; its size is ceil(scale) within one entry."""
    first = RingHashTable(
        hosts,
        min_ring_size=min_ring,
        max_ring_size=min_ring * 4,
        hash_function=HashFunction.XX_HASH,
    )
    second = RingHashTable(
        hosts,
        min_ring_size=min_ring,
        max_ring_size=min_ring * 4,
        hash_function=HashFunction.XX_HASH,
    )
    assert list(first.hashes) == list(second.hashes)
    min_weight = min(h.weight for h in hosts)
    scale = min(math.ceil(min_weight * min_ring) / min_weight, float(min_ring * 4))
    assert abs(first.size - scale) <= 1


def test_empty_tables_return_none() -> None:
    """No hosts: both tables answer None."""
    ring: RingHashTable[int] = RingHashTable(
        [], min_ring_size=1024, max_ring_size=2048, hash_function=HashFunction.XX_HASH
    )
    maglev: MaglevTable[int] = MaglevTable([], table_size=7)
    assert ring.lookup(5) is None
    assert maglev.lookup(5) is None
    assert ring.size == 0
