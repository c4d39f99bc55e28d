"""The hash functions return Envoy's published values bit for bit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.balancer.hash.reference import murmur_bytewise
from xdscp.balancer.hash.functions import murmur2_64a, rotl64, xxh64, xxh64_chain

# envoyproxy/envoy test/common/common/hash_test.cc, TEST(Hash, xxHash)
XXHASH_VECTORS = [
    ("foo", 3728699739546630719),
    ("bar", 5234164152756840025),
    ("foo\nbar", 8917841378505826757),
    ("lyft", 4400747396090729504),
    ("", 17241709254077376921),
]

# envoyproxy/envoy test/common/common/hash_test.cc, TEST(Hash, murmurHash2)
MURMUR_VECTORS = [
    ("foo", 9631199822919835226),
    ("bar", 11474628671133349555),
    ("foo\nbar", 16306510975912980159),
    ("lyft", 12847078931730529320),
    ("", 6142509188972423790),
]


@pytest.mark.parametrize(("text", "expected"), XXHASH_VECTORS)
def test_xxh64_matches_envoy_hash_test(text: str, expected: int) -> None:
    """xxh64 equals Envoy's HashUtil::xxHash64 for the strings in hash_test.cc."""
    assert xxh64(text) == expected
    assert xxh64(text.encode()) == expected


def test_xxh64_chain_matches_envoy_span_hash() -> None:
    """Hashing ["foo", "bar"] as a span gives hash_test.cc's xxHashWithVector value."""
    # envoyproxy/envoy test/common/common/hash_test.cc, TEST(Hash, xxHashWithVector)
    assert xxh64_chain(["foo", "bar"]) == 17745830980996999794
    assert xxh64_chain(["foo"]) == xxh64("foo")
    assert xxh64_chain([]) == 0


def test_xxh64_seed_changes_the_value() -> None:
    """Seed 1 (Maglev's skip seed) gives a different value from seed 0."""
    assert xxh64("127.0.0.1:90", 1) != xxh64("127.0.0.1:90")


@pytest.mark.parametrize(("text", "expected"), MURMUR_VECTORS)
def test_murmur2_matches_envoy_hash_test(text: str, expected: int) -> None:
    """murmur2_64a equals Envoy's MurmurHash::murmurHash2 (std::hash<std::string>)."""
    assert murmur2_64a(text) == expected
    assert murmur2_64a(text.encode()) == expected


@given(st.binary(max_size=600), st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_murmur2_matches_textbook_murmur64a(data: bytes, seed: int) -> None:
    """For any input length (word path and tail path), the result equals MurmurHash64A."""
    assert murmur2_64a(data, seed) == murmur_bytewise(data, seed)


def test_murmur2_hashes_text_as_utf8() -> None:
    """A str is hashed as its UTF-8 bytes."""
    assert murmur2_64a("héllo") == murmur2_64a("héllo".encode())


def test_rotl64_rotates_the_top_bit_round() -> None:
    """Rotating by one moves bit 63 to bit 0 and stays within 64 bits."""
    assert rotl64(1 << 63) == 1
    assert rotl64(0x8000_0000_0000_0001) == 3
    assert rotl64(5) == 10
    assert rotl64(0x1234, 64) == 0x1234
