"""The domain model rejects bad values with messages naming the field and the allowed range."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.model import (
    BalancingPolicy,
    Endpoint,
    HashInput,
    HashOn,
    Health,
    LbPolicy,
    Locality,
    Service,
    check_service_name,
    is_prime,
)


def test_endpoint_defaults_and_key() -> None:
    """An endpoint defaults to weight 1, priority 0, healthy; its key is ip:port."""
    ep = Endpoint("10.0.0.1", 8080)
    assert (ep.weight, ep.priority, ep.health) == (1, 0, Health.HEALTHY)
    assert str(ep) == "10.0.0.1:8080"


def test_ipv6_key_is_bracketed_and_normalised() -> None:
    """IPv6 literals are normalised and printed as Envoy prints them."""
    assert Endpoint("[2001:DB8::0001]", 443).key == "[2001:db8::1]:443"


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"address": "backend.local"}, "address", "IPv4 or IPv6 literal"),
        ({"port": 0}, "port", "[1, 65535]"),
        ({"port": 65536}, "port", "[1, 65535]"),
        ({"weight": 0}, "weight", "[1, 4294967295]"),
        ({"weight": 2**32}, "weight", "[1, 4294967295]"),
        ({"weight": True}, "weight", "integer"),
        ({"priority": 128}, "priority", "[0, 127]"),
        ({"health": "sick"}, "health", "healthy, unhealthy, degraded, draining"),
        ({"hash_key": ""}, "hash_key", "non-empty"),
    ],
)
def test_endpoint_rejects(kwargs: dict[str, object], field: str, fragment: str) -> None:
    """Each invalid endpoint field is named in the error, with the allowed range."""
    args: dict[str, object] = {"address": "10.0.0.1", "port": 80} | kwargs
    with pytest.raises(ValidationError) as info:
        Endpoint(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"lb": "fastest"}, "lb", "round_robin, weighted_round_robin"),
        ({"maglev_table_size": 65536}, "maglev_table_size", "prime"),
        ({"maglev_table_size": 5_000_012}, "maglev_table_size", "[2, 5000011]"),
        ({"min_ring_size": 4096, "max_ring_size": 1024}, "min_ring_size", "max_ring_size"),
        ({"max_ring_size": 8_388_609}, "max_ring_size", "[1, 8388608]"),
        ({"choice_count": 1}, "choice_count", "[2, 100]"),
        ({"active_request_bias": -0.5}, "active_request_bias", "[0.0, 100.0]"),
        ({"active_request_bias": float("nan")}, "active_request_bias", "[0.0, 100.0]"),
        ({"overprovisioning_factor": 0}, "overprovisioning_factor", "[1, 100000]"),
        ({"panic_threshold": 101}, "panic_threshold", "[0.0, 100.0]"),
        ({"locality_weighted": "yes"}, "locality_weighted", "true or false"),
        (
            {"lb": "round_robin", "hash_on": (HashOn(HashInput.HEADER, "x-user"),)},
            "hash_on",
            "ring_hash and maglev",
        ),
        (
            {"lb": "source_ip_hash", "hash_on": (HashOn(HashInput.HEADER, "x-user"),)},
            "hash_on",
            "source_ip",
        ),
    ],
)
def test_policy_rejects(kwargs: dict[str, object], field: str, fragment: str) -> None:
    """Each invalid policy field is named in the error, with the allowed range."""
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert fragment in str(info.value)


def test_source_ip_hash_implies_source_ip_hash_on() -> None:
    """source_ip_hash fills in its hash input itself."""
    policy = BalancingPolicy(lb=LbPolicy.SOURCE_IP_HASH)
    assert policy.hash_on == (HashOn(HashInput.SOURCE_IP),)
    assert policy.is_hashing


def test_hash_on_parse() -> None:
    """`header:x-user` and `source_ip` parse; a header without a name does not."""
    assert HashOn.parse("header:x-user") == HashOn(HashInput.HEADER, "x-user")
    assert HashOn.parse("source-ip") == HashOn(HashInput.SOURCE_IP)
    with pytest.raises(ValidationError, match="needs a name"):
        HashOn.parse("cookie")
    with pytest.raises(ValidationError, match="header, cookie, source_ip, query_parameter"):
        HashOn.parse("body:x")


def test_service_orders_endpoints_and_rejects_duplicates() -> None:
    """Endpoints are kept in a deterministic order; the same ip:port twice is an error."""
    b = Endpoint("10.0.0.10", 80)
    a = Endpoint("10.0.0.9", 80, locality=Locality("eu"))
    c = Endpoint("10.0.0.1", 80, priority=1)
    assert Service("web", (c, a, b)).endpoints == (b, a, c)
    with pytest.raises(ValidationError, match="listed twice"):
        Service("web", (a, Endpoint("10.0.0.9", 80, weight=3)))
    with pytest.raises(ValidationError) as info:
        Service("bad/name")
    assert info.value.field == "service"


@given(st.integers(min_value=0, max_value=20_000))
def test_is_prime_matches_trial_division(n: int) -> None:
    """is_prime agrees with a naive definition."""
    assert is_prime(n) == (n >= 2 and all(n % d for d in range(2, n)))


def test_default_maglev_table_is_prime() -> None:
    """Envoy's default table size and maximum are prime."""
    assert is_prime(65537)
    assert is_prime(5_000_011)


@pytest.mark.parametrize(
    "name", ["good-nl\n", "web\r", "a\x00", "a\tb", "wé", "-web", "web-", "a/b", "", "a" * 203]
)
def test_service_names_are_matched_whole(name: str) -> None:
    """A trailing newline (which `$` let through), control characters or anything outside
    letters, digits and `._-` is refused."""
    with pytest.raises(ValidationError):
        check_service_name(name)
    with pytest.raises(ValidationError):
        Service(name)


@pytest.mark.parametrize("name", ["x-user\n", "x user", "x\x00", ""])
def test_hash_header_names_are_matched_whole(name: str) -> None:
    """A header name with a trailing newline would make Envoy NACK the cluster."""
    with pytest.raises(ValidationError, match="needs a name"):
        HashOn(HashInput.HEADER, name)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_a_valid_service_name_is_only_ascii_name_characters(name: str) -> None:
    """Whatever the text, an accepted name holds only ASCII letters, digits and `._-`."""
    try:
        check_service_name(name)
    except ValidationError:
        return
    assert name.isascii()
    assert all(c.isalnum() or c in "._-" for c in name)
