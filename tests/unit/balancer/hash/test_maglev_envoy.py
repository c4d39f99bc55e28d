"""The Maglev table reproduces Envoy's own Maglev test expectations exactly.

Every expected table below is copied from envoyproxy/envoy
test/extensions/load_balancing_policies/maglev/maglev_lb_test.cc; the test named in each comment
is the source. Envoy asserts `chooseHost(hash=i)` for i in [0, 3 * M), i.e. the table itself.
"""

from __future__ import annotations

import random
from collections import Counter

from tests.unit.balancer.hash.envoy_hosts import addr, by_locality, flat
from xdscp.balancer.hash.tables import MaglevTable, WeightedKey


def table_of(table: MaglevTable[int]) -> list[int | None]:
    return [table.lookup(i) for i in range(table.table_size)]


def assert_wraps(table: MaglevTable[int], expected: list[int]) -> None:
    """Envoy checks hashes 0 .. 3M-1: the table repeats with period M."""
    assert [table.lookup(i) for i in range(3 * len(expected))] == expected * 3


def test_basic_table_of_seven() -> None:
    """Hosts :90-:95, table 7: Envoy's table and entries-per-host gauges (TEST_F Basic)."""
    table = MaglevTable(flat([addr(p) for p in range(90, 96)]), table_size=7)
    # maglev_lb_test.cc Basic: expected_assignments{2, 4, 0, 1, 5, 0, 3}
    assert_wraps(table, [2, 4, 0, 1, 5, 0, 3])
    assert (min(table.counts), max(table.counts)) == (1, 2)


def test_table_keyed_by_hostname_or_hash_key() -> None:
    """Keys "90".."95": Envoy's table (BasicWithHostName, BasicWithMetadataHashKey)."""
    table = MaglevTable(flat([str(p) for p in range(90, 96)]), table_size=7)
    # maglev_lb_test.cc BasicWithHostName: expected_assignments{2, 5, 0, 3, 4, 1, 0}
    assert_wraps(table, [2, 5, 0, 3, 4, 1, 0])


def test_table_does_not_depend_on_host_order() -> None:
    """Shuffling the hosts gives the same table: entries are sorted by key (BasicStability)."""
    hosts = flat([addr(p) for p in range(90, 96)])
    shuffled = hosts[:]
    random.Random(7).shuffle(shuffled)
    assert table_of(MaglevTable(shuffled, table_size=7)) == [2, 4, 0, 1, 5, 0, 3]


def test_retry_attempts_flip_the_hash() -> None:
    """attempt n looks up hash ^ (2**64 - n) (BasicWithRetryHostPredicate)."""
    table = MaglevTable(flat([addr(p) for p in range(90, 96)]), table_size=7)
    # maglev_lb_test.cc BasicWithRetryHostPredicate: hash 10 -> hosts_[1], then [0], then [5].
    assert [table.lookup(10, attempt) for attempt in (0, 1, 2)] == [1, 0, 5]


def test_weighted_table() -> None:
    """Weights 1:2 in a table of 17 (TEST_F Weighted)."""
    table = MaglevTable(flat([addr(90), addr(91)], [1, 2]), table_size=17)
    # maglev_lb_test.cc Weighted: expected_assignments
    assert_wraps(table, [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1])
    assert (min(table.counts), max(table.counts)) == (6, 11)


def test_single_weighted_host_is_degenerate() -> None:
    """One host always wins, whatever its weight (WeightedSingleHost, SingleHost)."""
    table = MaglevTable(flat([addr(90)], [7]), table_size=17)
    assert {table.lookup(i) for i in range(17)} == {0}
    assert table.counts == [1]


def test_locality_weighted_tables() -> None:
    """Locality weights replace host weights; weight-0 localities drop (LocalityWeighted*)."""
    same = MaglevTable(
        by_locality([addr(90), addr(91)], [[0], [1]], [1, 1], weights=[1, 2]), table_size=17
    )
    # maglev_lb_test.cc LocalityWeightedSameLocalityWeights (and LocalityWeightedGlobalPanic)
    assert_wraps(same, [1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1])
    assert (min(same.counts), max(same.counts)) == (8, 9)
    keys = [addr(90), addr(91), addr(92)]
    different = MaglevTable(
        by_locality(keys, [[0], [2], [1]], [8, 0, 2], weights=[1, 2, 3]), table_size=17
    )
    # maglev_lb_test.cc LocalityWeightedDifferentLocalityWeights
    assert_wraps(different, [1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    assert sorted(different.counts) == [4, 13]


def test_lopsided_locality_weights() -> None:
    """1023 light hosts get one slot each, the heavy host the rest (LocalityWeightedLopsided)."""
    keys = [addr(p) for p in range(1024)]
    hosts: list[WeightedKey[int]] = by_locality(keys, [[0], list(range(1, 1024))], [127, 1])
    table = MaglevTable(hosts, table_size=65537)
    counts = Counter(table_of(table))
    assert counts[0] == 65537 - 1023
    assert all(counts[i] == 1 for i in range(1, 1024))
    assert (min(table.counts), max(table.counts)) == (1, 65537 - 1023)
