"""Configurations Envoy rejects are rejected here too, naming the field."""

from __future__ import annotations

import pytest

from tests.unit.balancer.hash.envoy_hosts import addr, flat
from xdscp.balancer.hash.tables import MaglevTable, RingHashTable, WeightedKey
from xdscp.errors import ValidationError
from xdscp.model import HashFunction


def test_ring_min_above_max_is_rejected() -> None:
    """min_ring_size > max_ring_size fails, as in Envoy's BadRingSizeBounds."""
    with pytest.raises(ValidationError, match="min_ring_size"):
        RingHashTable(flat([addr(90)]), min_ring_size=20, max_ring_size=10, hash_function="xx_hash")


def test_ring_accepts_hash_function_names_and_rejects_others() -> None:
    """The StrEnum value selects the function; unknown names fail with the allowed set."""
    by_name = RingHashTable(
        flat([addr(80)]), min_ring_size=4, max_ring_size=4, hash_function="murmur_hash_2"
    )
    by_enum = RingHashTable(
        flat([addr(80)]), min_ring_size=4, max_ring_size=4, hash_function=HashFunction.MURMUR_HASH_2
    )
    assert list(by_name.hashes) == list(by_enum.hashes)
    with pytest.raises(ValidationError, match="hash_function"):
        RingHashTable(flat([addr(80)]), min_ring_size=4, max_ring_size=4, hash_function="md5")


def test_maglev_table_size_must_be_prime() -> None:
    """A non-prime table size fails, as in Envoy's NoPrimeNumber."""
    with pytest.raises(ValidationError, match="table_size"):
        MaglevTable(flat([addr(90)]), table_size=8)


@pytest.mark.parametrize("weight", [0.0, -0.5, 1.5, float("nan")])
def test_unnormalized_weights_are_rejected(weight: float) -> None:
    """Weights must be normalized: in (0, 1]."""
    with pytest.raises(ValidationError, match="weight"):
        MaglevTable([WeightedKey(addr(90), weight, 0)], table_size=7)


def test_empty_keys_are_rejected() -> None:
    """Every host needs a non-empty hash key."""
    with pytest.raises(ValidationError, match="key"):
        RingHashTable(
            [WeightedKey("", 1.0, 0)], min_ring_size=4, max_ring_size=4, hash_function="xx_hash"
        )
