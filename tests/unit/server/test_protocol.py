"""The SotW conversation rules, as table tests over request/response sequences."""

from __future__ import annotations

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server.protocol import Request, StreamState
from xdscp.server.rules import RequestKind
from xdscp.testing import CheckedStream, cluster_snapshot

C, E, L, R = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE


def snap(clusters: dict[str, bytes], endpoints: dict[str, bytes] | None = None) -> Snapshot:
    """The clusters, their CLAs, a listener and a route configuration."""
    listeners = (Resource(L, "l", b"listener"), Resource(R, "r", b"routes"))
    return cluster_snapshot(clusters, endpoints, listeners)


def test_envoy_startup_conversation() -> None:
    """CDS wildcard, EDS by name, LDS, RDS: each answered once, ACKs answered with nothing."""
    s = CheckedStream(snap({"a": b"1", "b": b"2"}))
    (cds,) = s.ask(C)
    assert [r.name for r in cds.resources] == ["a", "b"]
    (eds,) = s.ask(E, names=("a", "b"))
    assert [r.name for r in eds.resources] == ["a", "b"]
    assert s.ack(cds) == ()
    (lds,) = s.ask(L)
    assert s.ack(eds, ("a", "b")) == ()
    (rds,) = s.ask(R, names=("r",))
    assert (s.ack(lds), s.ack(rds, ("r",))) == ((), ())
    assert s.state.state(C).acked_version == cds.version_info


def test_no_snapshot_yet_then_first_snapshot_answers_waiting_requests() -> None:
    """Requests before any snapshot wait; the first snapshot answers them."""
    s = CheckedStream()
    assert s.ask(C) == ()
    (cds,) = s.push(snap({"a": b"1"}))
    assert cds.type_url is C


def test_stale_nonce_is_ignored() -> None:
    """An ACK for an older response (quick successive pushes) changes nothing."""
    s = CheckedStream(snap({"a": b"1"}))
    (first,) = s.ask(C)
    (second,) = s.push(snap({"a": b"2"}))[:1]
    assert s.ask(C, first.nonce, first.version_info) == ()
    assert s.last_kind == "stale"
    assert s.state.state(C).acked_version == ""
    s.ack(second)
    assert s.state.state(C).acked_version == second.version_info


def test_cds_change_is_followed_by_eds_and_the_warming_request_is_answered() -> None:
    """A changed cluster gets its CLA pushed right after CDS (even unchanged), without
    waiting for the CDS ACK, and Envoy's re-sent EDS request (looks like an ACK) is answered."""
    s = CheckedStream(snap({"a": b"1"}, {"a": b"cla"}))
    (cds,) = s.ask(C)
    (eds,) = s.ask(E, names=("a",))
    s.ack(cds), s.ack(eds, ("a",))
    pushed = s.push(snap({"a": b"1-changed"}, {"a": b"cla"}))
    assert [r.type_url for r in pushed] == [C, E]
    assert pushed[1].version_info == eds.version_info  # same CLA content, sent again
    (answer,) = s.ack(pushed[1], ("a",))  # the warming re-request: answered
    assert answer.type_url is E
    assert s.ack(answer, ("a",)) == ()  # and then quiet: no loop


def test_nack_keeps_quiet_until_content_changes() -> None:
    """A NACK is recorded with its message; the same content is never re-sent; new is."""
    s = CheckedStream(snap({"a": b"1"}))
    (cds,) = s.ask(C)
    s.ack(cds)
    (bad,) = s.push(snap({"a": b"bad"}))[:1]
    assert s.ask(C, bad.nonce, cds.version_info, error="maglev table size not prime") == ()
    assert s.last_kind == "nack"
    assert s.state.state(C).nacked_version == bad.version_info
    assert s.push(snap({"a": b"bad"})) == ()  # same rejected content again: not re-sent
    fixed = s.push(snap({"a": b"fixed"}))
    assert [r.type_url for r in fixed][:1] == [C]


def test_a_cla_is_sent_to_whoever_names_it_with_or_without_cds() -> None:
    """A static cluster's EDS-over-ADS request (no CDS on the stream) gets every named CLA
    that exists; new names are answered; the stream's CDS (if any) does not filter EDS."""
    s = CheckedStream(snap({"a": b"1", "b": b"2"}, {"a": b"x", "b": b"y", "static": b"z"}))
    (eds,) = s.ask(E, names=("static", "absent"))
    assert [r.name for r in eds.resources] == ["static"]
    s.ask(C)
    (more,) = s.ack(eds, ("static", "a"))
    assert [r.name for r in more.resources] == ["a", "static"]


def test_unchanged_content_for_this_stream_is_not_pushed() -> None:
    """A snapshot change to resources this stream does not subscribe to sends nothing."""
    s = CheckedStream(snap({"a": b"1", "b": b"2"}))
    (cds,) = s.ask(C)
    (eds,) = s.ask(E, names=("a",))
    s.ack(cds), s.ack(eds, ("a",))
    assert s.push(snap({"a": b"1", "b": b"2"}, {"a": b"cla-1", "b": b"changed"})) == ()


def test_standalone_stream_serves_only_its_type() -> None:
    """A CDS-only stream ignores other types."""
    state = StreamState(allowed=frozenset({C}), snapshot=snap({"a": b"1"}))
    assert (
        state.on_request(Request(E, resource_names=("a",))).answer.kind is RequestKind.UNKNOWN_TYPE
    )
    assert len(state.on_request(Request(C)).responses) == 1
