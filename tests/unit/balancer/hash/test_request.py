"""Request hashes follow Envoy's hash_policy.cc: per-policy values, rotate-xor, terminal.

Vectors: envoyproxy/envoy test/common/http/hash_policy_test.cc (per policy) and
test/common/router/config_impl_test.cc RouterMatcherHashPolicyTest.HashTerminal (combination).
Absolute XXH64 values are checked separately in test_functions.py against hash_test.cc.
"""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc

from xdscp.balancer.hash.functions import rotl64, xxh64, xxh64_chain
from xdscp.balancer.hash.request import (
    client_ip_text,
    parse_cookie_value,
    parse_query,
    request_hash,
)
from xdscp.errors import ValidationError

Policy = rc.RouteAction.HashPolicy


def header(name: str, *, terminal: bool = False) -> Any:
    return Policy(header=Policy.Header(header_name=name), terminal=terminal)


def cookie(name: str, *, ttl: int | None = None, terminal: bool = False) -> Any:
    policy = Policy(cookie=Policy.Cookie(name=name), terminal=terminal)
    if ttl is not None:
        policy.cookie.ttl.seconds = ttl
    return policy


def source_ip(*, enabled: bool = True, terminal: bool = False) -> Any:
    props = Policy.ConnectionProperties(source_ip=enabled)
    return Policy(connection_properties=props, terminal=terminal)


def query_param(name: str) -> Any:
    return Policy(query_parameter=Policy.QueryParameter(name=name))


def test_single_header_value() -> None:
    """A header hashes to XXH64 of its value (HeaderHashForSingleHeaderValue)."""
    headers = {"x-test-header": "test-value"}
    assert request_hash([header("x-test-header")], headers=headers) == xxh64("test-value")


def test_multiple_header_values_sorted_and_chained() -> None:
    """Repeated headers hash sorted, as a chain; order does not matter (MultipleHeaderValues)."""
    expected = xxh64_chain(["value1", "value2"])
    policy = [header("x-multi-header")]
    assert request_hash(policy, headers={"x-multi-header": ["value1", "value2"]}) == expected
    assert request_hash(policy, headers={"x-multi-header": ["value2", "value1"]}) == expected


def test_header_names_are_case_insensitive() -> None:
    """Header names match case-insensitively; values from differently cased keys merge."""
    policy = [header("X-User")]
    assert request_hash(policy, headers={"x-user": "a"}) == xxh64("a")
    merged = request_hash(policy, headers={"X-USER": "b", "x-user": "a"})
    assert merged == xxh64_chain(["a", "b"])


def test_missing_and_empty_headers() -> None:
    """No header or an empty list: no hash; an empty value still hashes (HeaderNotPresent)."""
    assert request_hash([header("x-missing-header")], headers={}) is None
    assert request_hash([header("x-missing-header")]) is None
    assert request_hash([header("x")], headers={"x": []}) is None
    assert request_hash([header("x")], headers={"x": ""}) == xxh64("")


def test_header_regex_rewrite() -> None:
    """regex_rewrite applies before hashing, RE2 groups included (RegexRewriteApplied)."""
    policy = header("x-test-header")
    policy.header.regex_rewrite.pattern.regex = "test"
    policy.header.regex_rewrite.substitution = "replaced"
    headers = {"x-test-header": "test-value"}
    assert request_hash([policy], headers=headers) == xxh64("replaced-value")
    policy.header.regex_rewrite.pattern.regex = r"^/(\w+)/.*$"
    policy.header.regex_rewrite.substitution = r"\1\\"
    assert request_hash([policy], headers={"x-test-header": "/users/42"}) == xxh64("users\\")


def test_cookie_present() -> None:
    """A present cookie hashes its value (CookieHashForPresentCookie)."""
    headers = {"cookie": "test-cookie=cookie-value"}
    assert request_hash([cookie("test-cookie")], headers=headers) == xxh64("cookie-value")
    assert request_hash([cookie("test-cookie")], cookies={"test-cookie": "v"}) == xxh64("v")


def test_cookie_absent_gives_no_hash_even_with_ttl() -> None:
    """A missing or empty cookie gives nothing; with ttl too, as the minted value is unknowable."""
    assert request_hash([cookie("test-cookie")], headers={}) is None
    assert request_hash([cookie("test-cookie", ttl=60)], headers={}) is None
    assert request_hash([cookie("c")], cookies={"c": ""}) is None


def test_parse_cookie_value_like_envoy() -> None:
    """First match across cookie headers, leading spaces trimmed, quotes removed."""
    headers = ["a=1; b", ' session="abc"; session=late', "session=other"]
    assert parse_cookie_value(headers, "session") == "abc"
    assert parse_cookie_value(headers, "a") == "1"
    assert parse_cookie_value(headers, "b") == ""
    assert parse_cookie_value(['x=""'], "x") == ""


def test_source_ip_hashes_the_address_without_port() -> None:
    """source_ip hashes the client IP text, port dropped (IpHashForValidIp)."""
    expected = xxh64("192.168.1.1")
    for address in ("192.168.1.1", "192.168.1.1:51234"):
        assert request_hash([source_ip()], source_ip=address) == expected
    assert request_hash([source_ip()], source_ip="[2001:DB8::1]:443") == xxh64("2001:db8::1")
    assert request_hash([source_ip()]) is None


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        ("[::ffff:1.2.3.4]:80", "::ffff:1.2.3.4"),
        ("::1.2.3.4", "::1.2.3.4"),
        ("::0.0.0.2", "::2"),
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ],
)
def test_client_ip_text_prints_like_inet_ntop(given: str, printed: str) -> None:
    """IPv6 client addresses print as glibc inet_ntop does (Envoy's addressAsString)."""
    assert client_ip_text(given) == printed


def test_client_ip_text_rejects_names() -> None:
    """A hostname is not a client address."""
    with pytest.raises(ValidationError):
        client_ip_text("client.example.com")


def test_query_parameter_first_value() -> None:
    """The first value of the parameter, raw; from `query` or from `:path`."""
    policy = [query_param("test-param")]
    path = {":path": "/test?test-param=param-value&test-param=second"}
    assert request_hash(policy, headers=path) == xxh64("param-value")
    assert request_hash(policy, query={"test-param": ["a", "b"]}) == xxh64("a")
    assert request_hash(policy, headers={":path": "/test?some-param=other-value"}) is None
    assert request_hash(policy, headers={}) is None
    assert request_hash(policy, headers={":path": "/x?test-param"}) == xxh64("")


def test_parse_query_keeps_raw_values() -> None:
    """Values stay percent-encoded; missing '=' means an empty value."""
    assert parse_query("/p?a=1%202&b&a=3") == {"a": ["1%202", "3"], "b": [""]}
    assert parse_query("/p") == {}


def test_policies_combine_by_rotate_and_xor() -> None:
    """Each produced value is folded in as rotl64(h, 1) ^ value, in policy order."""
    policies = [header("a"), header("b"), header("c")]
    headers = {"a": "1", "c": "3"}
    expected = rotl64(xxh64("1")) ^ xxh64("3")
    assert request_hash(policies, headers=headers) == expected
    same = [header("a"), header("a")]
    assert request_hash(same, headers={"a": "1"}) == rotl64(xxh64("1")) ^ xxh64("1") != 0


def test_terminal_policy_stops_once_a_hash_exists() -> None:
    """cookie, header[terminal], source_ip: terminal stops only after a hash (HashTerminal)."""
    policies = [cookie("cookie_hash"), header("foo_header", terminal=True), source_ip()]
    headers = {"cookie": "cookie_hash=foo;", "foo_header": "bar"}
    hash_1 = request_hash(policies, headers=headers, source_ip="4.3.2.1")
    hash_2 = request_hash(policies, headers=headers, source_ip="1.2.3.4")
    assert hash_1 == hash_2 == rotl64(xxh64("foo")) ^ xxh64("bar")
    assert request_hash(policies, source_ip="4.3.2.1") != request_hash(
        policies, source_ip="1.2.3.4"
    )
    # A terminal policy that produced nothing still stops when an earlier one did.
    only_cookie = request_hash(policies, headers={"cookie": "cookie_hash=foo"}, source_ip="1.1.1.1")
    assert only_cookie == xxh64("foo")


def test_disabled_source_ip_policy_is_dropped_with_its_terminal_flag() -> None:
    """connection_properties{source_ip: false} is not a policy at all, even if terminal."""
    policies = [header("a"), source_ip(enabled=False, terminal=True), header("b")]
    headers = {"a": "1", "b": "2"}
    assert request_hash(policies, headers=headers) == rotl64(xxh64("1")) ^ xxh64("2")


def test_filter_state_produces_nothing_and_unset_policy_is_rejected() -> None:
    """filter_state has nothing to read here; a policy with no specifier is invalid."""
    state = Policy(filter_state=Policy.FilterState(key="io.grpc.channel_id"))
    assert request_hash([state]) is None
    with pytest.raises(ValidationError):
        request_hash([Policy()])
