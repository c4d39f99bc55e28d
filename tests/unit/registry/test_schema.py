"""Parsing and writing the registry's etcd values (native, grpc-go, policies)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, HashOn, Health, LbPolicy, Locality
from xdscp.registry.codec import (
    MAX_JSON_DEPTH,
    MAX_KEY_BYTES,
    decode_key,
    json_depth_exceeds,
)
from xdscp.registry.schema import (
    REJECTION_REASONS,
    Registration,
    grpc_go_value,
    is_ip_literal,
    native_value,
    parse_grpc_go_key,
    parse_grpc_go_value,
    parse_native_key,
    parse_native_value,
    parse_policy,
    policy_value,
    rejection_reason,
)
from xdscp.registry.state import is_ip


def native(**fields: object) -> bytes:
    return json.dumps({"address": "10.0.0.1", "port": 80} | fields).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(ValidationError) as info:
        parse_native_value("svc", "id", raw, max_bytes=1024)
    return rejection_reason(info.value)


def test_native_value_with_every_field() -> None:
    """All documented native fields are read."""
    raw = native(
        weight=7,
        locality={"region": "eu", "zone": "eu-1a", "sub_zone": "r1"},
        priority=2,
        health="draining",
        metadata={"version": "v2"},
        hash_key="node-a",
    )
    reg = parse_native_value("svc", "id", raw)
    assert (reg.host, reg.port, reg.weight, reg.priority) == ("10.0.0.1", 80, 7, 2)
    assert reg.locality == Locality("eu", "eu-1a", "r1")
    assert reg.health is Health.DRAINING
    assert dict(reg.metadata) == {"version": "v2"}
    assert reg.hash_key == "node-a"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "wrong_type"),
        (native(port=0), "invalid_port"),
        (native(port=65536), "invalid_port"),
        (native(port="80"), "invalid_port"),
        (native(weight=0), "invalid_weight"),
        (native(weight=2**32), "invalid_weight"),
        (native(weight=True), "invalid_weight"),
        (native(health="sleepy"), "invalid_health"),
        (native(address=""), "invalid_address"),
        (native(address=5), "invalid_address"),
        (native(priority=128), "invalid_priority"),
        (native(metadata={"a": 1}), "invalid_field"),
        (native(metadata={"pad": "x" * 2000}), "oversized"),
        (b'{"port": 80}', "invalid_address"),
    ],
)
def test_malformed_native_values_name_their_reason(raw: bytes, reason: str) -> None:
    """Each kind of bad value is rejected with its own metric reason."""
    assert reason_of(raw) == reason


@pytest.mark.parametrize(
    "key",
    [
        "/xdscp/services/svc",
        "/xdscp/services/svc/",
        "/xdscp/services/svc/a/b",
        "/xdscp/services/bad name/x",
        "/other/svc/x",
    ],
)
def test_wrong_key_shapes_are_rejected(key: str) -> None:
    """Only `<root><service>/<id>` with a valid service name is accepted."""
    with pytest.raises(ValidationError) as info:
        parse_native_key(key, "/xdscp/services/")
    assert rejection_reason(info.value) == "bad_key"


def test_native_key_parts() -> None:
    """A good key splits into service and endpoint id."""
    assert parse_native_key("/xdscp/services/api.v1/i-1", "/xdscp/services/") == ("api.v1", "i-1")


def test_grpc_go_value_as_the_go_manager_writes_it() -> None:
    """`{"Op":0,"Addr":...}` with weight/zone/priority taken from an object Metadata."""
    raw = (
        b'{"Op":0,"Addr":"10.1.2.3:50051","Metadata":{"weight":5,"zone":"z1","priority":1,"v":"2"}}'
    )
    reg = parse_grpc_go_value("svc", "a", raw)
    assert reg is not None
    assert (reg.host, reg.port, reg.weight, reg.priority) == ("10.1.2.3", 50051, 5, 1)
    assert reg.locality.zone == "z1"
    assert dict(reg.metadata) == {"v": "2"}


def test_grpc_go_metadata_that_is_not_an_object_is_ignored() -> None:
    """Any JSON is legal Metadata for Go users; non-objects just carry nothing."""
    reg = parse_grpc_go_value("svc", "a", b'{"Op":0,"Addr":"[::1]:80","Metadata":"hello"}')
    assert reg is not None
    assert (reg.host, reg.port, reg.weight) == ("::1", 80, 1)


def test_grpc_go_delete_op_means_no_endpoint() -> None:
    """Op 1 is a deletion."""
    assert parse_grpc_go_value("svc", "a", b'{"Op":1,"Addr":"10.0.0.1:80"}') is None


@pytest.mark.parametrize(
    "raw",
    [b'{"Op":0,"Addr":"10.0.0.1"}', b'{"Op":0,"Addr":"::1:80"}', b'{"Op":7,"Addr":"h:1"}'],
)
def test_grpc_go_bad_values(raw: bytes) -> None:
    """A missing port, an unbracketed IPv6 address or an unknown Op are rejected."""
    with pytest.raises(ValidationError):
        parse_grpc_go_value("svc", "a", raw)


def test_grpc_go_key_needs_the_target_and_a_slash() -> None:
    """`svc` must not match `svc2/...` (the Go resolver's prefix bug)."""
    assert parse_grpc_go_key("svc/a", "svc/") == "a"
    with pytest.raises(ValidationError):
        parse_grpc_go_key("svc2/a", "svc/")
    with pytest.raises(ValidationError):
        parse_grpc_go_key("svc/", "svc/")


def test_written_values_parse_back() -> None:
    """What `xdscp register` writes, both formats, parses back to the same registration."""
    reg = Registration(
        "svc", "i", "10.0.0.9", 8443, 3, Locality("r", "z", ""), 1, Health.DEGRADED,
        {"k": "v"}, "hk",
    )  # fmt: skip
    back = parse_native_value("svc", "i", native_value(reg))
    assert back == reg
    go = parse_grpc_go_value("svc", "i", grpc_go_value(reg))
    assert go is not None
    assert (go.host, go.port, go.weight, go.locality, go.priority, go.health, go.hash_key) == (
        "10.0.0.9", 8443, 3, Locality("r", "z", ""), 1, Health.DEGRADED, "hk",
    )  # fmt: skip
    assert dict(go.metadata) == {"k": "v"}


def test_plain_grpc_go_value_is_byte_identical_to_go() -> None:
    """Without metadata the value is exactly what Go's json.Marshal produces."""
    reg = Registration("svc", "i", "10.0.0.1", 50051)
    assert grpc_go_value(reg) == b'{"Op":0,"Addr":"10.0.0.1:50051","Metadata":null}'


def test_policy_round_trip_and_validation() -> None:
    """Policies round-trip; unknown fields and model-rule violations are rejected."""
    policy = BalancingPolicy(lb=LbPolicy.MAGLEV, hash_on=(HashOn.parse("header:x-user"),))
    assert parse_policy(policy_value(policy)) == policy
    assert parse_policy(b'{"lb":"ring_hash","min_ring_size":64}').min_ring_size == 64
    for bad in (b'{"lb":"fastest"}', b'{"colour":"red"}', b'{"maglev_table_size":100}'):
        with pytest.raises(ValidationError) as info:
            parse_policy(bad)
        assert rejection_reason(info.value) == "invalid_policy"


REASONS = set(REJECTION_REASONS)


def attempt(parse: Callable[[], Registration | None]) -> Registration | str | None:
    """The parse result, or the rejection reason when it raises ValidationError."""
    try:
        return parse()
    except ValidationError as exc:
        return rejection_reason(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["address", "port", "weight", "locality", "priority", "health", "metadata", "hash_key", "x"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values) | json_values)
def test_fuzz_native_parser_accepts_or_rejects_cleanly(value: object) -> None:
    """Any JSON either parses into a valid registration or raises ValidationError."""
    raw = json.dumps(value).encode()
    outcome = attempt(lambda: parse_native_value("svc", "id", raw))
    if isinstance(outcome, Registration):
        assert 1 <= outcome.port <= 65535
        assert 1 <= outcome.weight <= 2**32 - 1
    else:
        assert outcome in REASONS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_both_parsers_on_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes never raise anything but ValidationError."""
    for parse in (parse_native_value, parse_grpc_go_value):
        outcome = attempt(lambda parse=parse: parse("svc", "id", raw))  # type: ignore[misc]
        assert isinstance(outcome, Registration) or outcome in REASONS


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"Op": st.sampled_from([0, 1, 2, "0"]), "Addr": st.text(max_size=30)},
        optional={"Metadata": json_values},
    )
)
def test_fuzz_grpc_go_parser(value: dict[str, object]) -> None:
    """Go-format values either parse (Op 0/1) or are rejected with a reason."""
    outcome = attempt(lambda: parse_grpc_go_value("svc", "id", json.dumps(value).encode()))
    assert outcome is None or isinstance(outcome, Registration) or outcome in REASONS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 3000 + b"]" * 3000, "too_deep"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "too_deep"),
        (b"[" * 3000, "too_deep"),  # unterminated: still never handed to the recursive parser
        (b'{"address":"10.0.0.1","port":80,"metadata":{"x":"' + b"[" * 500 + b'"}}', None),
        (b'{"address":"10.0.0.1","port":80,"hash_key":"\\ud83d"}', "invalid_json"),
        (b'{"address":"10.0.0.1","port":80,"hash_key":"\\ud83d\\ude00"}', None),
        (b'{"address":"10.0.0.1","port":80,"hash_key":"\xff"}', "invalid_utf8"),
        ("{}".encode("utf-16"), "invalid_utf8"),
        (b"\xef\xbb\xbf{}", "invalid_json"),  # a BOM is not JSON
        (native(address="10.0.0.1\n"), None),  # surrounding whitespace is trimmed
        (native(address="host\x00.example"), "invalid_address"),
        (native(address="a..b"), "invalid_address"),
        (native(address="-a.example"), "invalid_address"),
        (native(address="fe80::1%eth0"), "invalid_address"),
        (native(address="[10.0.0.1]"), "invalid_address"),
        (native(address="[::1]"), None),
        (native(address="münchen.example"), "invalid_address"),
        (native(address="api.internal."), None),
        (native(address="10.0.0.256"), "invalid_address"),  # a typo, not a hostname
        (native(address="127.1"), "invalid_address"),  # inet_aton would read 127.0.0.1
        (native(address="0"), "invalid_address"),
        (native(address="3com.example"), None),
        (
            b'{"address":"10.0.0.1","port":1' + b"0" * 5000 + b"}",
            "invalid_json",
        ),  # Python's int digit limit
    ],
)
def test_values_are_proven_as_bytes_first(raw: bytes, reason: str | None) -> None:
    """Depth, UTF-8, Unicode text and host syntax are checked without any exception escaping;
    strings holding brackets do not count as nesting."""
    outcome = attempt(lambda: parse_native_value("svc", "id", raw, max_bytes=1 << 20))
    assert outcome == reason if reason else isinstance(outcome, Registration)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (b"/xdscp/services/svc/\xff", "invalid_utf8"),
        (b"/xdscp/services/svc/\xed\xa0\x80", "invalid_utf8"),  # an encoded surrogate
        (b"/xdscp/services/" + b"a" * MAX_KEY_BYTES, "key_too_long"),
        (b"/xdscp/services/svc/x\n", "bad_key"),
        (b"/xdscp/services/svc/x\x7f", "bad_key"),
        (b"/xdscp/services/svc/\xc2\x85", "bad_key"),  # U+0085, a C1 control
    ],
)
def test_keys_are_proven_as_bytes_first(key: bytes, reason: str) -> None:
    """A key too long, not UTF-8 or holding control characters is refused before parsing."""
    with pytest.raises(ValidationError) as info:
        decode_key(key)
    assert rejection_reason(info.value) == reason


@pytest.mark.parametrize("name", ["good-nl\n", "a\x00", "web\r", " web", "wé", "a/b", ""])
def test_service_names_in_keys_must_match_whole(name: str) -> None:
    """A trailing newline, control character or non-ASCII letter makes the key invalid."""
    with pytest.raises(ValidationError) as info:
        parse_native_key(decode_key(f"/xdscp/services/{name}/x".encode()), "/xdscp/services/")
    assert rejection_reason(info.value) == "bad_key"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.sampled_from([b"[]", b"{}"]))
def test_depth_scan_matches_the_nesting(depth: int, strings: int, pair: bytes) -> None:
    """The byte scan says "too deep" exactly when the nesting exceeds the limit."""
    raw = pair[:1] * depth + b'"[{\\"}",' * strings + pair[1:] * depth
    assert json_depth_exceeds(raw) == (depth > MAX_JSON_DEPTH)


def test_every_reason_is_documented_in_the_readme() -> None:
    """docs/registry.md's table lists every label `xdscp_registry_rejected_total` can carry."""
    readme = (Path(__file__).parents[3] / "docs" / "registry.md").read_text()
    missing = [r for r in REJECTION_REASONS if f"`{r}`" not in readme]
    assert missing == []


hosts = (
    st.ip_addresses().map(str)
    | st.ip_addresses(v=6).map(lambda ip: f"[{ip}]")
    | st.from_regex(r"[a-z0-9.\-_]{1,20}", fullmatch=True)
    | st.text(max_size=20)
)


@settings(max_examples=500, deadline=None)
@given(hosts)
def test_accepted_hosts_are_told_apart_without_parsing(host: str) -> None:
    """Every accepted address is an IP literal exactly when `is_ip_literal` says so (the
    registry resolves the others as hostnames)."""
    outcome = attempt(lambda: parse_native_value("svc", "id", native(address=host)))
    if isinstance(outcome, Registration):
        assert is_ip_literal(outcome.host) == is_ip(outcome.host)
    else:
        assert outcome == "invalid_address"
