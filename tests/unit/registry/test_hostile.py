"""RegistryState under hostile keys and values: nothing escapes, nothing good is lost."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.hostile import registry_documents
from xdscp.errors import ValidationError
from xdscp.etcd import WatchEvent, WatchEventType
from xdscp.model import LbPolicy
from xdscp.registry import GrpcGoTarget, RegistryLayout, RegistryState, Rejection
from xdscp.registry.codec import MAX_VALUE_BYTES
from xdscp.registry.schema import (
    REJECTION_REASONS,
    parse_grpc_go_value,
    parse_policy,
)

ROOT, POLICIES = b"/xdscp/services/", b"/xdscp/policies/"
TARGET = GrpcGoTarget.parse("gsvc=team/gtarget")
LAYOUT = RegistryLayout(grpc_targets=(TARGET,), domain_suffixes=(".svc", ".svc.cluster.local"))
DEEP = b"[" * 3000 + b"]" * 3000


class Feed:
    """A RegistryState fed with increasing revisions, collecting every rejection."""

    def __init__(self, layout: RegistryLayout = LAYOUT) -> None:
        self.state = RegistryState(layout)
        self.revision = 0
        self.rejections: list[Rejection] = []

    def put(self, key: bytes, value: object) -> list[Rejection]:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return self._send(WatchEvent(WatchEventType.PUT, key, raw, self._next()), key)

    def delete(self, key: bytes) -> list[Rejection]:
        return self._send(WatchEvent(WatchEventType.DELETE, key, b"", self._next()), key)

    def _next(self) -> int:
        self.revision += 1
        return self.revision

    def _send(self, event: WatchEvent, key: bytes) -> list[Rejection]:
        if key.startswith(POLICIES):
            found = self.state.apply_policies([event])
        elif key.startswith(TARGET.prefix.encode()):
            found = self.state.apply_grpc_go(TARGET, [event])
        else:
            found = self.state.apply_native([event])
        self.rejections += found
        return found

    def build(self) -> dict[str, list[str]]:
        services, found = self.state.build(lambda host: None)
        self.rejections += found
        return {name: [e.key for e in s.endpoints] for name, s in services.items()}


def good(ip: str, port: int = 80) -> dict[str, object]:
    return {"address": ip, "port": port}


def test_a_deeply_nested_value_is_rejected_cleanly() -> None:
    """3000 levels of `[` under an endpoint key or a policy key: rejected, nothing raised."""
    feed = Feed()
    feed.put(ROOT + b"web/1", good("10.0.0.1"))
    feed.put(POLICIES + b"web", {"lb": "maglev"})
    assert [r.reason for r in feed.put(ROOT + b"web/2", DEEP)] == ["too_deep"]
    assert [r.reason for r in feed.put(POLICIES + b"web", DEEP)] == ["too_deep"]
    assert [r.reason for r in feed.put(TARGET.prefix.encode() + b"x", DEEP)] == ["too_deep"]
    assert feed.build() == {"web": ["10.0.0.1:80"], "gsvc": []}
    assert feed.state.build(lambda h: None)[0]["web"].policy.lb is LbPolicy.MAGLEV


def test_keys_that_are_not_utf8_never_collide_with_others() -> None:
    """Two keys differing only in undecodable bytes are both refused; a good key stays."""
    feed = Feed()
    feed.put(ROOT + b"web/\xef\xbf\xbd", good("10.0.0.1"))  # U+FFFD, valid UTF-8
    feed.put(ROOT + b"web/\xff", {"oops": 1})
    feed.put(ROOT + b"web/\xfe", good("10.0.0.3"))
    feed.delete(ROOT + b"web/\xfe")
    assert feed.build() == {"web": ["10.0.0.1:80"], "gsvc": []}
    assert sorted(r.reason for r in feed.rejections) == ["invalid_utf8", "invalid_utf8"]
    assert {r.key for r in feed.rejections} == {
        "/xdscp/services/web/\\xff",
        "/xdscp/services/web/\\xfe",
    }


def test_a_trailing_newline_or_control_character_in_a_name_is_refused() -> None:
    """`good-nl\\n` no longer passes as a service name (`$` matched before the newline)."""
    feed = Feed()
    for name in (b"good-nl\n", b"tab\tname", b"nul\x00", b"del\x7f"):
        assert [r.reason for r in feed.put(ROOT + name + b"/x", good("10.0.0.9"))] == ["bad_key"]
        assert [r.reason for r in feed.put(POLICIES + name, {"lb": "random"})] == ["bad_key"]
    assert feed.build() == {"gsvc": []}


def test_a_rejection_is_reported_once_per_key_and_content() -> None:
    """Rebuilding, re-listing or rewriting the same bad value does not report it again; a new
    bad value at the key, or the same one after the key was deleted, does."""
    feed = Feed()
    assert len(feed.put(ROOT + b"web/1", b"{oops")) == 1
    assert feed.put(ROOT + b"web/1", b"{oops") == []
    feed.build()
    assert feed.state.build(lambda h: None)[1] == []
    assert [r.reason for r in feed.put(ROOT + b"web/1", b"[]")] == ["wrong_type"]
    feed.delete(ROOT + b"web/1")
    assert len(feed.put(ROOT + b"web/1", b"[]")) == 1


def test_a_bad_value_over_a_good_endpoint_removes_only_that_key() -> None:
    """The key now holds garbage, so its old registration goes; its neighbours stay."""
    feed = Feed()
    feed.put(ROOT + b"web/1", good("10.0.0.1"))
    feed.put(ROOT + b"web/2", good("10.0.0.2"))
    feed.put(ROOT + b"web/1", b"x" * (MAX_VALUE_BYTES + 1))
    assert feed.build()["web"] == ["10.0.0.2:80"]
    assert [r.reason for r in feed.rejections] == ["oversized"]


@pytest.mark.parametrize(
    ("first", "later", "suffixes"),
    [
        (b"web", b"WEB", ()),
        (b"WEB", b"web", ()),
        (b"Api", b"aPI", ()),
        (b"web", b"web.svc", (".svc",)),
        (b"web.svc", b"web", (".svc",)),
        (b"web", b"web.SVC", (".svc",)),
    ],
)
def test_names_that_clash_in_a_client_refuse_the_later_one(
    first: bytes, later: bytes, suffixes: tuple[str, ...]
) -> None:
    """Case-insensitive domains and domain suffixes: the later service is refused with
    `name_clash`, once; the earlier keeps serving; when it goes, the later one is served."""
    feed = Feed(RegistryLayout(domain_suffixes=suffixes))
    feed.put(ROOT + first + b"/1", good("10.0.0.1"))
    assert feed.build() == {first.decode(): ["10.0.0.1:80"]}
    feed.put(ROOT + later + b"/1", good("10.0.0.2"))
    assert feed.build() == {first.decode(): ["10.0.0.1:80"]}
    assert [r.reason for r in feed.rejections] == ["name_clash"]
    assert feed.rejections[0].key == (ROOT + later + b"/1").decode()
    feed.put(ROOT + later + b"/2", good("10.0.0.3"))
    feed.put(ROOT + first + b"/2", good("10.0.0.4"))
    assert feed.build() == {first.decode(): ["10.0.0.1:80", "10.0.0.4:80"]}
    assert len(feed.rejections) == 1
    feed.delete(ROOT + first + b"/1")
    feed.delete(ROOT + first + b"/2")
    assert feed.build() == {later.decode(): ["10.0.0.2:80", "10.0.0.3:80"]}


def test_a_clash_seen_at_once_keeps_the_service_written_first() -> None:
    """After a restart both names arrive in one listing: the one whose oldest key has the
    lower revision keeps serving, whatever the names' order."""
    state = RegistryState()
    events = [
        WatchEvent(WatchEventType.PUT, ROOT + b"WEB/1", json.dumps(good("10.0.0.2")).encode(), 9),
        WatchEvent(WatchEventType.PUT, ROOT + b"web/1", json.dumps(good("10.0.0.1")).encode(), 4),
    ]
    state.apply_native(events)
    services, rejections = state.build(lambda h: None)
    assert list(services) == ["web"]
    assert [(r.key, r.reason) for r in rejections] == [("/xdscp/services/WEB/1", "name_clash")]


def test_a_grpc_target_derives_its_service_from_the_last_segment() -> None:
    """`foo/bar/my-service` feeds `my-service`; a bad segment names the derivation and the
    SERVICE=TARGET form in the error."""
    target = GrpcGoTarget.parse("foo/bar/my-service")
    assert (target.service, target.prefix) == ("my-service", "foo/bar/my-service/")
    with pytest.raises(ValueError, match=r"derived from the target.*SERVICE=TARGET"):
        GrpcGoTarget.parse("foo/bar/my service")
    with pytest.raises(ValueError, match="SERVICE=TARGET"):
        GrpcGoTarget.parse("bad name=foo/bar")


# --- property tests -------------------------------------------------------------------------

GOOD_NATIVE = {f"good{i}": [f"10.1.{i}.{j}" for j in range(1, 3)] for i in range(3)}
GOOD_GO = ["10.2.0.1:50051", "10.2.0.2:50051"]

names = st.sampled_from(["good0", "GOOD0", "good0.svc", "Good1", "x", "good-nl\n", "a\x00", ""])
ids = st.text(max_size=8) | st.sampled_from(["1", "\n", "a/b"])
text_keys = st.builds(lambda n, i: f"{n}/{i}".encode("utf-8", "surrogatepass"), names, ids)
raw_keys = text_keys | st.binary(max_size=40) | st.just(b"z" * 1100)
json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["10.9.9.9", "::1", "host.invalid", "\ud800", 0, 65536, "maglev"])
)  # fmt: skip
json_docs = registry_documents(json_leaves, max_leaves=10)


def _dump(doc: object) -> bytes:
    return json.dumps(doc).encode("utf-8", "surrogatepass")


raw_values = (
    json_docs.map(_dump)
    | st.binary(max_size=64)
    | st.integers(60, 4000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(60, 4000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    | st.integers(MAX_VALUE_BYTES - 20, MAX_VALUE_BYTES + 20).map(
        lambda n: (b'{"address":"10.9.0.1","port":80,"x":"' + b"p" * n)[:n] + b'"}'
    )
)
where = st.sampled_from([ROOT, POLICIES, TARGET.prefix.encode()])
hostile = st.lists(st.tuples(where, raw_keys, raw_values, st.booleans()), max_size=12)


def _seed_good(feed: Feed) -> set[bytes]:
    keys = set()
    for service, ips in GOOD_NATIVE.items():
        for n, ip in enumerate(ips):
            keys.add(ROOT + f"{service}/{n}".encode())
            feed.put(ROOT + f"{service}/{n}".encode(), good(ip))
    for n, addr in enumerate(GOOD_GO):
        keys.add(TARGET.prefix.encode() + str(n).encode())
        feed.put(TARGET.prefix.encode() + str(n).encode(), {"Op": 0, "Addr": addr})
    keys.add(POLICIES + b"good0")
    feed.put(POLICIES + b"good0", {"lb": "ring_hash", "hash_on": ["header:x-user"]})
    return keys


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_entries_beside_good_registrations(
    entries: list[tuple[bytes, bytes, bytes, bool]],
) -> None:
    """Arbitrary keys and values (bytes, deep nesting, sizes around the limit, control and
    unicode characters, both formats, policies) written after good registrations: no
    exception escapes, every good endpoint stays served, every bad entry is rejected with
    a documented reason."""
    feed = Feed()
    good_keys = _seed_good(feed)
    feed.build()
    last: dict[bytes, bytes] = {}
    for prefix, key, value, also_delete in entries:
        full = prefix + key
        if full in good_keys:
            continue
        feed.put(full, value)
        last[full] = value
        if also_delete:
            feed.delete(full)
            last.pop(full)
    written = list(last.items())
    services, found = feed.state.build(lambda host: None)
    feed.rejections += found
    served = {name: {e.key for e in s.endpoints} for name, s in services.items()}
    for service, ips in GOOD_NATIVE.items():
        assert {f"{ip}:80" for ip in ips} <= served[service]
    assert set(GOOD_GO) <= served["gsvc"]
    assert {r.reason for r in feed.rejections} <= set(REJECTION_REASONS)
    accepted = {key.encode(): reg.service for key, reg in feed.state.registrations()}
    rejected = {r.key for r in feed.rejections}
    clashed = {m for r in feed.rejections if r.reason == "name_clash" for m in [r.message]}
    for key, value in written:
        if key.startswith(POLICIES) or _go_delete(key, value):
            continue  # policies: see the policy property; `Op: 1` is a deletion
        if key in accepted:
            service = accepted[key]
            assert service in served or any(repr(service) in m for m in clashed)
        else:
            assert key.decode("utf-8", "backslashreplace") in rejected


def _go_delete(key: bytes, value: bytes) -> bool:
    if not key.startswith(TARGET.prefix.encode()):
        return False
    try:
        return parse_grpc_go_value("gsvc", "x", value) is None
    except ValidationError:
        return False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(raw_keys, raw_values), min_size=1, max_size=8))
def test_bad_policies_never_lose_the_last_good_policy(writes: list[tuple[bytes, bytes]]) -> None:
    """Whatever is written under the policies prefix, good0 keeps a valid policy: the last
    good one, or one of the values accepted for it."""
    feed = Feed()
    _seed_good(feed)
    for key, value in writes:
        feed.put(POLICIES + key, value)
    services, found = feed.state.build(lambda host: None)
    assert len(services["good0"].endpoints) == len(GOOD_NATIVE["good0"])
    assert {r.reason for r in feed.rejections + found} <= set(REJECTION_REASONS)
    good0 = [value for key, value in writes if key == b"good0"]
    if not any(_valid_policy(value) for value in good0):
        assert services["good0"].policy.lb is LbPolicy.RING_HASH


def _valid_policy(value: bytes) -> bool:
    try:
        parse_policy(value)
    except ValidationError:
        return False
    return True
