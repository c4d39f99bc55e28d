"""Subscriptions as the xDS protocol defines them, SotW and delta, as table tests.

A request's resource names are the subscription whatever its nonce says; wildcard only for
Listener and Cluster; a re-subscription is always answered; a repeated NACK is a duplicate;
a type a stream does not serve gets an empty answer.
"""

from __future__ import annotations

import pytest

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.errors import InvalidRequestError
from xdscp.server.delta import DeltaRequest, DeltaStreamState
from xdscp.server.protocol import EMPTY_VERSION, Request, RequestKind, Response, StreamState

C, E, L, R = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def world(route: bytes = b"r1", *extra: str) -> Snapshot:
    names = ("svc", *extra)
    return Snapshot.of(
        [Resource(R, n, route + n.encode()) for n in names]
        + [Resource(L, n, b"l" + n.encode()) for n in names]
        + [Resource(C, n, b"c" + n.encode()) for n in names]
        + [Resource(E, n, b"e" + n.encode()) for n in names]
    )


def ask(state: StreamState, type_url: str, names: tuple[str, ...], nonce: str = "") -> Response:
    """One request that must be answered with exactly one response."""
    outcome = state.on_request(Request(type_url, "", nonce, names))
    (response,) = outcome.responses
    return response


def test_grpc_go_reproduction_unsubscribe_crossing_a_push_then_resubscribe() -> None:
    """Issue 12: RDS [svc] ACKed (nonce 1); a push (nonce 2) not ACKed; [] with nonce 1
    (stale) still unsubscribes; the next change pushes nothing; [svc] with nonce 3 (never
    sent) is answered with svc."""
    state = StreamState(snapshot=world(b"r1"))
    first = ask(state, R, ("svc",))
    assert (
        state.on_request(Request(R, first.version_info, first.nonce, ("svc",))).answer.kind
        is RequestKind.ACK
    )
    (second,) = state.on_snapshot(world(b"r2"))
    unsubscribe = state.on_request(Request(R, first.version_info, first.nonce, ()))
    assert (unsubscribe.answer.kind, unsubscribe.responses) == (RequestKind.STALE, ())
    assert state.state(R).names == frozenset()
    assert state.on_snapshot(world(b"r3")) == ()  # nobody watches svc: nothing pushed
    again = state.on_request(Request(R, second.version_info, "3", ("svc",)))
    (answer,) = again.responses
    assert [r.name for r in answer.resources] == ["svc"]
    assert answer.resources[0].any_bytes == b"r3svc"
    assert int(answer.nonce) > int(second.nonce)


def test_stale_request_that_adds_names_is_answered_and_one_that_drops_names_is_obeyed() -> None:
    """EDS [a] → stale [a, b] answered with b; stale [b] drops a: a's changes stay quiet."""
    state = StreamState(snapshot=world(b"r", "a", "b"))
    ask(state, E, ("a",))
    (pushed,) = state.on_request(Request(E, "", "999", ("a", "b"))).responses
    assert {r.name for r in pushed.resources} >= {"b"}
    assert state.on_request(Request(E, "", "998", ("b",))).responses == ()
    base = state.snapshot
    assert base is not None
    assert state.on_snapshot(base.updated([Resource(E, "a", b"new-a")], {})) == ()
    (b_change,) = state.on_snapshot(base.updated([Resource(E, "b", b"new-b")], {}))
    assert [r.name for r in b_change.resources] == ["b"]


def test_legacy_wildcard_lasts_until_names_then_empty_means_nothing() -> None:
    """CDS first request [] is a wildcard kept by empty ACKs; [svc] narrows it; a later []
    unsubscribes everything (a gRPC client whose only service went away gets nothing)."""
    state = StreamState(snapshot=world(b"r", "other"))
    cds = ask(state, C, ())
    assert [r.name for r in cds.resources] == ["other", "svc"]
    assert state.on_request(Request(C, cds.version_info, cds.nonce, ())).responses == ()
    assert state.state(C).names is None
    narrowed = state.on_request(Request(C, cds.version_info, cds.nonce, ("svc",)))
    assert narrowed.responses == ()  # narrowing needs no answer: the client drops the rest
    state.on_request(Request(C, cds.version_info, cds.nonce, ()))
    assert state.state(C).names == frozenset()
    assert state.on_snapshot(world(b"r2", "other", "third")) == ()
    star = ask(state, C, ("*",), nonce=cds.nonce)
    assert [r.name for r in star.resources] == ["other", "svc", "third"]


def test_rds_and_eds_have_no_wildcard_and_star_is_just_a_name() -> None:
    """An RDS or EDS request with no names (even the first) subscribes to nothing."""
    state = StreamState(snapshot=world())
    for type_url in (R, E):
        (empty,) = state.on_request(Request(type_url)).responses
        assert empty.resources == ()
        (star,) = state.on_request(Request(type_url, "", empty.nonce, ("*",))).responses
        assert star.resources == ()


def test_duplicate_nack_is_its_own_kind_sotw() -> None:
    """The first NACK of a response is a NACK; the same nonce NACKed again is a duplicate."""
    state = StreamState(snapshot=world())
    cds = ask(state, C, ())
    nack = Request(C, "", cds.nonce, (), "bad cluster")
    assert state.on_request(nack).answer.kind is RequestKind.NACK
    assert [state.on_request(nack).answer.kind for _ in range(3)] == [
        RequestKind.DUPLICATE_NACK
    ] * 3
    (newer,) = state.on_snapshot(world(b"r", "more"))[:1]
    assert state.on_request(Request(C, "", newer.nonce, (), "bad")).answer.kind is RequestKind.NACK


def test_duplicate_nack_is_its_own_kind_delta() -> None:
    """Delta: the same nonce NACKed again is a duplicate, not stale."""
    state = DeltaStreamState(snapshot=world())
    (cds,) = state.on_request(DeltaRequest(C)).responses
    nack = DeltaRequest(C, response_nonce=cds.nonce, error_message="bad")
    assert state.on_request(nack).answer.kind is RequestKind.NACK
    assert state.on_request(nack).answer.kind is RequestKind.DUPLICATE_NACK
    assert state.on_request(DeltaRequest(C, response_nonce="77")).answer.kind is RequestKind.STALE


def test_unserved_type_gets_an_empty_answer_once_sotw() -> None:
    """A type xdscp does not serve (SDS over ADS) is answered once with no resources;
    its ACK is quiet; served types go on being served on the same stream."""
    state = StreamState(snapshot=world())
    outcome = state.on_request(Request(SECRET, "", "", ("cert",)))
    (empty,) = outcome.responses
    assert outcome.answer.kind is RequestKind.UNKNOWN_TYPE
    assert (empty.type_url, empty.version_info, empty.resources) == (SECRET, EMPTY_VERSION, ())
    assert state.on_request(Request(SECRET, EMPTY_VERSION, empty.nonce, ("cert",))).responses == ()
    assert ask(state, C, ()).resources


def test_unserved_type_is_answered_with_its_names_removed_delta() -> None:
    """Delta: the subscribed names of an unserved type come back as removed."""
    state = DeltaStreamState(snapshot=world())
    (empty,) = state.on_request(DeltaRequest(SECRET, subscribe=("cert",))).responses
    assert (empty.type_url, empty.resources, empty.removed) == (SECRET, (), ("cert",))
    assert state.on_request(DeltaRequest(SECRET, response_nonce=empty.nonce)).responses == ()


def test_single_type_service_takes_an_empty_type_url_as_its_own() -> None:
    """On the standalone CDS service the type URL is implicit; on ADS a request without
    one is invalid (the stream ends with INVALID_ARGUMENT)."""
    cds_only = StreamState(allowed=frozenset({C}), snapshot=world())
    assert ask(cds_only, "", ()).type_url is C
    with pytest.raises(InvalidRequestError, match="type_url"):
        StreamState(snapshot=world()).on_request(Request(""))
    with pytest.raises(InvalidRequestError, match="type_url"):
        DeltaStreamState(snapshot=world()).on_request(DeltaRequest(""))


def test_delta_resubscribe_after_unsubscribe_is_answered_even_if_once_rejected() -> None:
    """Delta: a rejected version is not re-pushed, but a name unsubscribed and subscribed
    again is answered with what exists (the client forgot the name entirely)."""
    state = DeltaStreamState(snapshot=world())
    (eds,) = state.on_request(DeltaRequest(E, subscribe=("svc",))).responses
    state.on_request(DeltaRequest(E, response_nonce=eds.nonce, error_message="weight 0"))
    assert state.on_snapshot(Snapshot.of(world().resources[E].values())) == ()
    state.on_request(DeltaRequest(E, unsubscribe=("svc",), response_nonce=eds.nonce))
    (again,) = state.on_request(DeltaRequest(E, subscribe=("svc",))).responses
    assert [r.name for r in again.resources] == ["svc"]


def test_delta_eds_first_request_without_names_is_not_a_wildcard() -> None:
    """Delta EDS/RDS: a first request with no names subscribes to nothing."""
    state = DeltaStreamState(snapshot=world())
    assert state.on_request(DeltaRequest(E)).responses == ()
    assert state.state(E).names == frozenset()
    (cds,) = state.on_request(DeltaRequest(C)).responses
    assert [r.name for r in cds.resources] == ["svc"]


def test_delta_nack_of_an_older_response_keeps_what_a_later_one_sent() -> None:
    """Delta: response 1 sends a@v2, response 2 a@v3; a NACK of 1 arriving after 2 was sent
    rejects v2 only — the client holds v3 (sent later), and v3 is not blocked."""
    state = DeltaStreamState(snapshot=world())
    (_first,) = state.on_request(DeltaRequest(C)).responses
    base = state.snapshot
    assert base is not None
    v2 = base.updated([Resource(C, "svc", b"v2")], {})
    (two,) = state.on_snapshot(v2)
    (three,) = state.on_snapshot(v2.updated([Resource(C, "svc", b"v3")], {}))
    nack = DeltaRequest(C, response_nonce=two.nonce, error_message="bad v2")
    assert state.on_request(nack).answer.kind is RequestKind.NACK
    ts = state.state(C)
    assert ts.held["svc"] == three.resources[0].version
    assert ts.rejected["svc"] == two.resources[0].version


def test_delta_nack_and_resubscribe_in_one_request_is_answered() -> None:
    """Delta: a name unsubscribed (stale nonce), then subscribed again by a request that
    NACKs the response that carried it, is answered: the NACK rejected nothing it wanted."""
    state = DeltaStreamState(snapshot=world())
    (one,) = state.on_request(DeltaRequest(C, subscribe=("svc",))).responses
    state.on_request(DeltaRequest(C, unsubscribe=("svc",), response_nonce="garbage"))
    again = DeltaRequest(C, subscribe=("svc",), response_nonce=one.nonce, error_message="x")
    (answer,) = state.on_request(again).responses
    assert [r.name for r in answer.resources] == ["svc"]


def test_delta_unsubscribing_the_wildcard_forgets_rejections_of_what_it_covered() -> None:
    """Delta: after `*` is unsubscribed, a cluster it covered and the client rejected is
    answered when subscribed by name (the client dropped it with the wildcard)."""
    state = DeltaStreamState(snapshot=world())
    (one,) = state.on_request(DeltaRequest(C)).responses
    state.on_request(DeltaRequest(C, response_nonce=one.nonce, error_message="bad"))
    state.on_request(DeltaRequest(C, unsubscribe=("*",), response_nonce=one.nonce))
    (answer,) = state.on_request(DeltaRequest(C, subscribe=("svc",))).responses
    assert [r.name for r in answer.resources] == ["svc"]
