"""RING_HASH and MAGLEV balancers (spec §6): tables per priority, host keys, weights."""

from __future__ import annotations

import random

import pytest
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2

from tests.harness.balancer import Ep, balancer, cla, cluster, counts, eps
from xdscp.balancer import BalancerError, build_balancer
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.hash.functions import xxh64
from xdscp.balancer.hash.tables import MaglevTable, RingHashTable, WeightedKey
from xdscp.model import HashFunction

HASHES = [xxh64(f"client-{i}") for i in range(2000)]


def _hash_lb(endpoints: list[Ep], policy: str = "RING_HASH", **options: object) -> HashBalancer:
    lb = balancer(endpoints, policy, **options)  # type: ignore[arg-type]
    assert isinstance(lb, HashBalancer)
    return lb


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_table_is_the_reference_table_over_normalized_weights(policy: str) -> None:
    """The P0 table is the hashing helper's table over `ip:port` keys and weight/sum(weight)."""
    lb = _hash_lb(eps(1, 2, 7), policy)
    keys = [WeightedKey(str(h), h.weight / 10, h) for h in lb.hosts]
    reference = (
        RingHashTable(
            keys, min_ring_size=1024, max_ring_size=8_388_608, hash_function=HashFunction.XX_HASH
        )
        if policy == "RING_HASH"
        else MaglevTable(keys, table_size=65537)
    )
    for value in HASHES:
        assert lb.choose(value) is reference.lookup(value)


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_same_hash_same_host_regardless_of_rng(policy: str) -> None:
    """Hash balancers are deterministic once the hash is known: the RNG plays no part."""
    a = balancer(eps(1, 1, 1, 1), policy, seed=1)
    b = balancer(eps(1, 1, 1, 1), policy, seed=2)
    assert [str(a.choose(h)) for h in HASHES] == [str(b.choose(h)) for h in HASHES]


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_hash_key_metadata_replaces_the_address(policy: str) -> None:
    """envoy.lb/hash_key is what is hashed: the same keys on other addresses map the same way."""
    first = [Ep(f"10.0.0.{i}:80", hash_key=f"node-{i}") for i in range(1, 5)]
    second = [Ep(f"10.9.9.{i}:81", hash_key=f"node-{i}") for i in range(1, 5)]
    a, b = _hash_lb(first, policy), _hash_lb(second, policy)
    index_a = {h: i for i, h in enumerate(a.hosts)}
    index_b = {h: i for i, h in enumerate(b.hosts)}
    assert [index_a[a.choose(v)] for v in HASHES] == [index_b[b.choose(v)] for v in HASHES]  # type: ignore[index]
    plain = _hash_lb([Ep(f"10.0.0.{i}:80") for i in range(1, 5)], policy)
    index_p = {h: i for i, h in enumerate(plain.hosts)}
    assert [index_a[a.choose(v)] for v in HASHES] != [index_p[plain.choose(v)] for v in HASHES]  # type: ignore[index]


def test_use_hostname_for_hashing() -> None:
    """use_hostname_for_hashing hashes the endpoint hostname instead of the address."""
    endpoints = [Ep(f"10.0.0.{i}:80", hostname=f"h{i}.example") for i in range(1, 4)]
    message = cluster("RING_HASH")
    message.common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing = True
    lb = build_balancer(message, cla(endpoints))
    assert isinstance(lb, HashBalancer)
    assert [w.key for w in lb.weighted_hosts[0]] == ["h1.example", "h2.example", "h3.example"]


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_tables_hold_healthy_hosts_only(policy: str) -> None:
    """Unhealthy hosts are left out of the table when the priority is not in panic."""
    endpoints = [
        Ep(f"10.0.0.{i}:80", health="unhealthy" if i == 2 else "healthy") for i in range(1, 6)
    ]
    lb = _hash_lb(endpoints, policy)
    assert "10.0.0.2:80" not in {str(lb.choose(v)) for v in HASHES}


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_panic_tables_hold_every_host(policy: str) -> None:
    """In panic the table is built over all hosts, unhealthy included."""
    endpoints = [
        Ep(f"10.0.0.{i}:80", health="healthy" if i == 1 else "unhealthy") for i in range(1, 5)
    ]
    lb = _hash_lb(endpoints, policy)
    assert lb.load.panic == (True,)
    assert {str(lb.choose(v)) for v in HASHES} == {f"10.0.0.{i}:80" for i in range(1, 5)}


def test_the_hash_chooses_the_priority() -> None:
    """The request hash picks the priority (x = h % 100 + 1 against 70/30) and the host."""
    endpoints = [
        Ep("10.0.0.1:80"),
        Ep("10.0.0.2:80", health="unhealthy"),
        Ep("10.0.1.1:80", priority=1),
    ]
    lb = _hash_lb(endpoints)
    assert lb.load.healthy == (70, 30)
    for value in HASHES:
        expected = "10.0.0.1:80" if value % 100 < 70 else "10.0.1.1:80"
        assert str(lb.choose(value)) == expected


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV"])
def test_no_hash_is_weighted_random_by_table_share(policy: str) -> None:
    """Without a hash a random 64-bit value is looked up: shares follow the table (1:2:7)."""
    lb = _hash_lb(eps(1, 2, 7), policy)
    shares = lb.table_shares()
    seen = counts(lb, 40_000)
    for host, share in shares.items():
        assert seen[str(host)] / 40_000 == pytest.approx(share, abs=0.012)
    assert shares[lb.hosts[2]] == pytest.approx(0.7, abs=0.03)


def test_locality_weighted_normalization() -> None:
    """With locality weighting: w = weight * (lw/sum lw) / sum(weight in locality)."""
    endpoints = [
        Ep("10.0.0.1:80", 1, zone="a", locality_weight=1),
        Ep("10.0.0.2:80", 3, zone="a", locality_weight=1),
        Ep("10.0.1.1:80", 5, zone="b", locality_weight=3),
    ]
    lb = _hash_lb(endpoints, "MAGLEV", locality_weighted=True)
    weights = {w.key: w.weight for w in lb.weighted_hosts[0]}
    assert weights == pytest.approx(
        {"10.0.0.1:80": 1 / 16, "10.0.0.2:80": 3 / 16, "10.0.1.1:80": 0.75}
    )


def test_typed_ring_hash_settings_and_cluster_hash_policy() -> None:
    """Typed RingHash: ring sizes, hash function and the cluster-level hash policy are read."""
    config = ring_hash_pb2.RingHash(hash_function=ring_hash_pb2.RingHash.MURMUR_HASH_2)
    config.minimum_ring_size.value = 64
    config.maximum_ring_size.value = 128
    policy = config.consistent_hashing_lb_config.hash_policy.add()
    policy.header.header_name = "x-user"
    lb = build_balancer(cluster(typed=[config]), cla(eps(1, 1)), rng=random.Random(1))
    assert isinstance(lb, HashBalancer)
    assert lb.settings.hash_function is HashFunction.MURMUR_HASH_2
    assert lb.tables[0].size == 64  # scale = ceil(0.5 * 64) / 0.5
    skewed = build_balancer(cluster(typed=[config]), cla(eps(1, 1000)))
    assert isinstance(skewed, HashBalancer)
    assert skewed.tables[0].size == 128  # scale = min(1001, max ring 128)
    assert lb.request_hash(headers={"x-user": "alice"}) == xxh64("alice")
    assert lb.request_hash(headers={}) is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: setattr(c.maglev_lb_config.table_size, "value", 65536), "prime"),
        (
            lambda c: setattr(c.ring_hash_lb_config.minimum_ring_size, "value", 4096),
            "minimum_ring_size",
        ),
    ],
)
def test_invalid_tables_are_rejected(mutate: object, message: str) -> None:
    """A non-prime Maglev table or min ring > max ring is rejected as Envoy NACKs it."""
    c = cluster("MAGLEV" if message == "prime" else "RING_HASH")
    if message != "prime":
        c.ring_hash_lb_config.maximum_ring_size.value = 1024
    mutate(c)  # type: ignore[operator]
    with pytest.raises(BalancerError, match=message):
        build_balancer(c, cla(eps(1, 1)))


def test_typed_maglev_table_size() -> None:
    """Typed Maglev carries its own table size."""
    config = maglev_pb2.Maglev()
    config.table_size.value = 251
    lb = build_balancer(cluster(typed=[config]), cla(eps(1, 1, 1)))
    assert isinstance(lb, HashBalancer)
    assert lb.tables[0].size == 251
