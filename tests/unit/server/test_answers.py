"""Each request is an `Answer` event: what it meant, the nonce it answers, the version it
accepted or rejected, a NACK's error; the status board records NACKs from the event alone."""

from __future__ import annotations

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server import Answer, DeltaRequest, DeltaStreamState, Request, StreamState
from xdscp.server.nodes import NodeInfo
from xdscp.server.rules import RequestKind
from xdscp.server.status import StreamRecord

C = TypeUrl.CLUSTER
UNSERVED = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"


def _snapshot(content: bytes) -> Snapshot:
    return Snapshot.of([Resource(C, "a", content)])


def test_sotw_answers_carry_the_nonce_version_and_error() -> None:
    """Initial, ACK, NACK, its duplicate, a stale nonce and an unserved type, as events."""
    state = StreamState(snapshot=_snapshot(b"1"))
    first = state.on_request(Request(C))
    assert first.answer == Answer(RequestKind.INITIAL, C)
    (sent,) = first.responses
    ack = state.on_request(Request(C, sent.version_info, sent.nonce)).answer
    assert ack == Answer(RequestKind.ACK, C, sent.nonce, sent.version_info)
    (newer,) = state.on_snapshot(_snapshot(b"2"))
    nack = Request(C, sent.version_info, newer.nonce, (), "bad cluster")
    assert state.on_request(nack).answer == Answer(
        RequestKind.NACK, C, newer.nonce, newer.version_info, "bad cluster"
    )
    again = state.on_request(nack).answer
    assert (again.kind, again.version) == (RequestKind.DUPLICATE_NACK, newer.version_info)
    assert state.on_request(Request(C, "", "77")).answer == Answer(RequestKind.STALE, C, "77")
    unserved = state.on_request(Request(UNSERVED)).answer
    assert unserved == Answer(RequestKind.UNKNOWN_TYPE, UNSERVED)


def test_delta_answers_carry_the_nonce_version_and_error() -> None:
    """The same events on a delta stream; its versions are those of what the client holds."""
    state = DeltaStreamState(snapshot=_snapshot(b"1"))
    first = state.on_request(DeltaRequest(C))
    assert first.answer == Answer(RequestKind.INITIAL, C)
    (sent,) = first.responses
    ack = state.on_request(DeltaRequest(C, response_nonce=sent.nonce)).answer
    assert ack == Answer(RequestKind.ACK, C, sent.nonce, state.state(C).acked_version)
    assert ack.version
    (newer,) = state.on_snapshot(_snapshot(b"2"))
    rejected = state.state(C).sent_version
    nack = DeltaRequest(C, response_nonce=newer.nonce, error_message="bad cluster")
    assert state.on_request(nack).answer == Answer(
        RequestKind.NACK, C, newer.nonce, rejected, "bad cluster"
    )
    assert state.on_request(nack).answer.kind is RequestKind.DUPLICATE_NACK
    stale = state.on_request(DeltaRequest(C, response_nonce="77")).answer
    assert stale == Answer(RequestKind.STALE, C, "77")


def test_the_status_record_takes_a_nack_from_the_event_alone() -> None:
    """A NACK's version, nonce and error reach the NACK history from the `Answer` event."""
    record = StreamRecord(NodeInfo("n1"), "ADS", "envoy")
    record.on_answer(Answer(RequestKind.NACK, C, "3", "v3", "bad cluster"), 12.0)
    record.on_answer(Answer(RequestKind.DUPLICATE_NACK, C, "3", "v3"), 13.0)
    record.on_answer(Answer(RequestKind.ACK, C, "4", "v4"), 14.0)
    assert [n.as_json() for n in record.nacks] == [
        {
            "at": "1970-01-01T00:00:12.000Z", "type": "Cluster", "version": "v3", "nonce": "3",
            "error": "bad cluster",
        }
    ]  # fmt: skip
    assert (record.types[C].nacked, record.types[C].acked) == (12.0, 14.0)
