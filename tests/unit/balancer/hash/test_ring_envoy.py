"""The ring reproduces Envoy's own ring-hash test expectations exactly.

Every expected value below is copied from envoyproxy/envoy
test/extensions/load_balancing_policies/ring_hash/ring_hash_lb_test.cc; the test named in each
comment is the source.
"""

from __future__ import annotations

from collections import Counter

from tests.unit.balancer.hash.envoy_hosts import U64_MAX, addr, by_locality, flat, sweep
from xdscp.balancer.hash.tables import RingHashTable, WeightedKey
from xdscp.model import ENVOY_MAX_RING, HashFunction

XX = HashFunction.XX_HASH
MURMUR = HashFunction.MURMUR_HASH_2


def build(
    hosts: list[WeightedKey[int]],
    min_ring: int,
    max_ring: int = ENVOY_MAX_RING,
    function: HashFunction = XX,
) -> RingHashTable[int]:
    return RingHashTable(
        hosts, min_ring_size=min_ring, max_ring_size=max_ring, hash_function=function
    )


def ring_pairs(ring: RingHashTable[int]) -> list[tuple[int, int | None]]:
    return [(h, ring.lookup(h)) for h in ring.hashes]


def test_basic_ring_of_six_hosts() -> None:
    """Hosts :90-:95, min ring 12: Envoy's printed ring, sizes and picks (TEST_P Basic)."""
    ring = build(flat([addr(p) for p in range(90, 96)]), 12)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (12, 2, 2)
    # ring_hash_lb_test.cc Basic, "hash ring: port | position" (host index = port - 90)
    assert ring_pairs(ring) == [
        (833437586790550860, 4),
        (928266305478181108, 2),
        (1033482794131418490, 0),
        (3551244743356806947, 5),
        (3851675632748031481, 3),
        (5583722120771150861, 1),
        (6311230543546372928, 1),
        (7700377290971790572, 3),
        (13144177310400110813, 5),
        (13444792449719432967, 2),
        (15516499411664133160, 4),
        (16117243373044804889, 0),
    ]
    # ring_hash_lb_test.cc Basic, chooseHost expectations
    assert ring.lookup(0) == 4
    assert ring.lookup(U64_MAX) == 4
    assert ring.lookup(3551244743356806947) == 5
    assert ring.lookup(3551244743356806948) == 3
    assert ring.lookup(16117243373044804880) == 0


def test_basic_ring_with_murmur2() -> None:
    """Hosts :80-:85 with MURMUR_HASH_2: Envoy's printed ring (TEST_P BasicWithMurmur2)."""
    ring = build(flat([addr(p) for p in range(80, 86)]), 12, function=MURMUR)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (12, 2, 2)
    # ring_hash_lb_test.cc BasicWithMurmur2, "ring hash: host=... hash=..." (index = port - 80)
    assert ring_pairs(ring) == [
        (1358027074129602068, 5),
        (4361834613929391114, 3),
        (7224494972555149682, 4),
        (7701421856454313576, 1),
        (8649315368077433379, 2),
        (8739448859063030639, 4),
        (9887544217113020895, 1),
        (10150910876324007731, 2),
        (15168472011420622455, 3),
        (15427156902705414897, 0),
        (16375050414328759093, 5),
        (17613279263364193813, 0),
    ]
    assert ring.lookup(0) == 5
    assert ring.lookup(U64_MAX) == 5
    assert ring.lookup(1358027074129602068) == 5
    assert ring.lookup(1358027074129602069) == 3
    assert ring.lookup(10150910876324007730) == 2


def test_ring_keyed_by_hostname_or_hash_key() -> None:
    """Keys "90".."95" (hostname / metadata hash_key) give Envoy's ring (BasicWithHostname)."""
    ring = build(flat([str(p) for p in range(90, 96)]), 12)
    # ring_hash_lb_test.cc BasicWithHostname and BasicWithMetadataHashKey, "host | position"
    assert ring_pairs(ring) == [
        (1975508444536362413, 5),
        (2376063919839173711, 5),
        (2386806903309390596, 3),
        (6749904478991551885, 4),
        (6803900775736438537, 3),
        (7225015537174310577, 2),
        (8787465352164086522, 0),
        (11282020843382717940, 2),
        (13723418369486627818, 1),
        (13776502110861797421, 0),
        (14338313586354474791, 1),
        (15364271037087512980, 4),
    ]
    assert ring.lookup(7225015537174310577) == 2
    assert ring.lookup(6803900775736438537) == 3


def test_retry_attempts_walk_the_ring() -> None:
    """attempt n takes the entry n places further, wrapping (BasicWithRetryHostPredicate)."""
    ring = build(flat([addr(p) for p in range(90, 96)]), 12)
    # ring_hash_lb_test.cc BasicWithRetryHostPredicate: hash 0 -> :94, next :92, then :90,
    # and 13 rejected attempts wrap to :92.
    assert [ring.lookup(0, attempt) for attempt in (0, 1, 2, 13)] == [4, 2, 0, 2]


def test_uneven_hosts_round_ring_up() -> None:
    """Two hosts, min ring 3: two entries each, ring of 4 (TEST_P UnevenHosts)."""
    ring = build(flat([addr(80), addr(81)]), 3)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (4, 2, 2)
    assert ring_pairs(ring) == [
        (5454692015285649509, 0),
        (7859399908942313493, 1),
        (13838424394637650569, 0),
        (16064866803292627174, 1),
    ]
    moved = build(flat([addr(81), addr(82)]), 3)
    assert [h for h, _ in ring_pairs(moved)] == [
        7859399908942313493,
        8241336090459785962,
        12882406409176325258,
        16064866803292627174,
    ]
    assert moved.lookup(0) == 0


# ring_hash_lb_test.cc HostWeightedTinyRing / LocalityWeightedTinyRing: hash -> host index
TINY_RING = {
    928266305478181108: 2,
    4443673547860492590: 2,
    5583722120771150861: 1,
    6311230543546372928: 1,
    13444792449719432967: 2,
    16117243373044804889: 0,
}


def test_host_weighted_tiny_ring() -> None:
    """Weights 1:2:3 on a ring of exactly 6 give 1, 2 and 3 entries (HostWeightedTinyRing)."""
    ring = build(flat([addr(p) for p in (90, 91, 92)], [1, 2, 3]), 6, 6)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (6, 1, 3)
    assert {h: ring.lookup(h) for h in TINY_RING} == TINY_RING


def test_locality_weighted_tiny_ring() -> None:
    """Locality weights 1:2:3:0 act like host weights; weight 0 drops (LocalityWeightedTinyRing)."""
    keys = [addr(p) for p in (90, 91, 92, 93)]
    ring = build(by_locality(keys, [[0], [1], [2], [3]], [1, 2, 3, 0]), 6, 6)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (6, 1, 3)
    assert {h: ring.lookup(h) for h in TINY_RING} == TINY_RING


def test_weighted_large_ring_histogram() -> None:
    """6000 evenly spaced hashes over a 6144 ring land 987/1932/3081 (HostWeightedLargeRing)."""
    keys = [addr(p) for p in (90, 91, 92, 93)]
    for ring in (
        build(flat(keys[:3], [1, 2, 3]), 6144),
        build(by_locality(keys, [[0], [1], [2], [3]], [1, 2, 3, 0]), 6144),  # ...LocalityWeighted
    ):
        assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (6144, 1024, 3072)
        counts = Counter(ring.lookup(h) for h in sweep(6000))
        assert counts == {0: 987, 1: 1932, 2: 3081}


def test_host_and_locality_weighted_rings() -> None:
    """Host 1:2 inside localities weighted 1:2 (HostAndLocalityWeightedTinyRing / LargeRing)."""
    keys = [addr(p) for p in (90, 91, 92, 93)]
    hosts = by_locality(keys, [[0, 1], [2, 3]], [1, 2], weights=[1, 2, 1, 2])
    tiny = build(hosts, 9, 9)
    assert (tiny.size, tiny.min_hashes_per_host, tiny.max_hashes_per_host) == (9, 1, 4)
    expected = {
        928266305478181108: 2,
        3851675632748031481: 3,
        5583722120771150861: 1,
        6311230543546372928: 1,
        7700377290971790572: 3,
        12559126875973811811: 3,
        13444792449719432967: 2,
        13784988426630141778: 3,
        16117243373044804889: 0,
    }
    assert {h: tiny.lookup(h) for h in expected} == expected
    large = build(hosts, 9216)
    assert (large.size, large.min_hashes_per_host, large.max_hashes_per_host) == (9216, 1024, 4096)
    assert Counter(large.lookup(h) for h in sweep(9000)) == {0: 924, 1: 2009, 2: 2053, 3: 4014}


def test_small_fractional_scale_leaves_hosts_out() -> None:
    """Four hosts on a ring of 2: two hosts get no entry (SmallFractionalScale)."""
    ring = build(flat([addr(p) for p in range(90, 94)]), 2, 2)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (2, 0, 1)
    counts = Counter(ring.lookup(h) for h in sweep(1024))
    assert len(counts) == 2
    assert sum(counts.values()) == 1024


def test_large_fractional_scale() -> None:
    """Two hosts on a ring of 1023 get 512 and 511 entries (LargeFractionalScale)."""
    ring = build(flat([addr(90), addr(91)]), 1023, 1023)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (1023, 511, 512)
    assert Counter(ring.lookup(h) for h in sweep(1023)) == {0: 526, 1: 497}


def test_lopsided_weights_small_scale() -> None:
    """Host :0 weighted 127/128, 1023 hosts share 1/128, ring 1024 (LopsidedWeightSmallScale)."""
    keys = [addr(p) for p in range(1024)]
    hosts = by_locality(keys, [[0], list(range(1, 1024))], [127, 1])
    ring = build(hosts, 1024, 1024)
    assert (ring.size, ring.min_hashes_per_host, ring.max_hashes_per_host) == (1024, 0, 1016)
    expected = {
        11664790346325243808: 1,
        15894554872961148518: 128,
        13958138884277627155: 256,
        15803774069438192949: 384,
        3829253010855396576: 512,
        17918147347826565154: 640,
        6442769608292299103: 768,
        5881074926069334434: 896,
    }
    assert {h: ring.lookup(h) for h in expected} == expected
