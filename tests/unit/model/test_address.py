"""`HOST:PORT` (`parse_host_port`, `format_host_port`): IPv6 in brackets, ports in range,
a clear `ValidationError` for anything else, and formatting that parses back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.model import format_host_port, parse_host_port

_HOSTNAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True)
_HOSTS = st.one_of(
    _HOSTNAMES,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(host=_HOSTS, port=st.integers(1, 65535))
def test_a_formatted_address_parses_back(host: str, port: int) -> None:
    """Whatever the host (name, IPv4, IPv6), format then parse is the identity."""
    assert parse_host_port(format_host_port(host, port)) == (host, port)


@given(text=st.text(max_size=40))
def test_any_text_parses_or_fails_with_a_validation_error(text: str) -> None:
    """Arbitrary input never raises anything but `ValidationError` naming the field; what
    parses has a port in range and an IPv6 host only if it was bracketed."""
    error: ValidationError | None = None
    try:
        host, port = parse_host_port(text, field="xds.address")
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.field == "xds.address"
        assert repr(text) in error.message
        return
    assert 1 <= port <= 65535
    assert host
    if ":" in host:
        assert text.startswith("[")
        ipaddress.IPv6Address(host)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:18000", ("127.0.0.1", 18000)),
        ("[::1]:80", ("::1", 80)),
        ("etcd.local:2379", ("etcd.local", 2379)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_the_forms_that_parse(text: str, expected: tuple[str, int]) -> None:
    """HOST:PORT and [IPv6]:PORT."""
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost", "expected HOST:PORT, got 'localhost'"),
        ("::1:80", "an IPv6 address must be in brackets ([::1]:PORT), got '::1:80'"),
        ("[::1]80", "expected [IPv6]:PORT, got '[::1]80'"),
        ("[::1:80", "an opening '[' needs its ']', got '[::1:80'"),
        ("[10.0.0.1]:80", "brackets are for IPv6 addresses, got '[10.0.0.1]:80'"),
        (":80", "expected HOST:PORT with a host, got ':80'"),
        ("h:0", "port must be in [1, 65535], got 'h:0'"),
        ("h:65536", "port must be in [1, 65535], got 'h:65536'"),
        ("h:http", "port must be in [1, 65535], got 'h:http'"),
        ("h:٣", "port must be in [1, 65535], got 'h:٣'"),  # a non-ASCII digit
        (8080, "expected HOST:PORT, got 8080"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text: object, message: str) -> None:
    """Each mistake gets its own message, with the text as given."""
    with pytest.raises(ValidationError) as caught:
        parse_host_port(text)
    assert caught.value.message == message


def test_port_zero_and_a_default_port_when_asked() -> None:
    """A listening address may ask for port 0; an etcd endpoint may leave its port out."""
    assert parse_host_port("0.0.0.0:0", min_port=0) == ("0.0.0.0", 0)
    assert parse_host_port("etcd", default_port=2379) == ("etcd", 2379)
    assert parse_host_port("[::1]", default_port=2379) == ("::1", 2379)
    assert parse_host_port("etcd:1", default_port=2379) == ("etcd", 1)
