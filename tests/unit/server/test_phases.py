"""A state-of-the-world type's phase moves only along `TRANSITIONS`, and no conversation
(any requests, nonces, NACKs and snapshots, in any order) reaches an illegal combination."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.server.conversations import TYPES, names, snapshots, world
from xdscp.cache import TypeUrl
from xdscp.server.messages import Request
from xdscp.server.phases import TRANSITIONS, IllegalTransitionError, Phase, Step, moved, violations
from xdscp.server.protocol import StreamState
from xdscp.server.rules import RequestKind

_AFTER = {  # the phase an answer leaves, unless the request was answered with a response
    RequestKind.ACK: Phase.ACKED,
    RequestKind.NACK: Phase.NACKED,
}


_requests = st.tuples(
    st.just("request"),
    st.sampled_from(TYPES),
    names,
    st.sampled_from(("none", "latest", "older", "bogus")),
    st.booleans(),  # a NACK
)


def _nonce(state: StreamState, type_url: TypeUrl, choice: str) -> str:
    sent = state.types[type_url].sent_nonce if type_url in state.types else ""
    return {"none": "", "latest": sent, "older": str(max(int(sent or 1) - 1, 1)), "bogus": "99"}[
        choice
    ]


@settings(max_examples=1000, deadline=None)
@given(st.lists(_requests | snapshots, max_size=25))
def test_no_conversation_reaches_an_illegal_state(steps: list[tuple[Any, ...]]) -> None:
    """After every request and every snapshot, each type's fields agree with its phase; an
    answer leaves the phase its kind says (SENT when the request was answered at once)."""
    state = StreamState(snapshot=world({"a": 0, "b": 0}))
    for step in steps:
        if step[0] == "snapshot":
            state.on_snapshot(world(step[1]))
        else:
            _, type_url, names, choice, nack = step
            nonce = _nonce(state, type_url, choice)
            error = "rejected" if nack and nonce else None
            handled = state.on_request(Request(type_url, "v", nonce, names, error))
            expected = _AFTER.get(handled.answer.kind)
            if any(r.type_url == type_url for r in handled.responses):
                expected = Phase.SENT
            if expected is not None:
                assert state.types[type_url].phase is expected
        for type_url, ts in state.types.items():
            assert violations(ts, type_url) == [], (type_url, ts)


def test_every_phase_but_the_first_is_reached_only_by_listed_moves() -> None:
    """The table: each phase is reachable, nothing leads back to UNSUBSCRIBED, and a move
    the table lacks (an ACK before anything was sent) is refused."""
    assert set(TRANSITIONS.values()) == set(Phase) - {Phase.UNSUBSCRIBED}
    assert moved(Phase.SENT, Step.NACK) is Phase.NACKED
    with pytest.raises(IllegalTransitionError):
        moved(Phase.REQUESTED, Step.ACK)
    with pytest.raises(IllegalTransitionError):
        moved(Phase.NACKED, Step.SUBSCRIBE)


def test_a_broken_state_is_reported() -> None:
    """The checker is not vacuous: a state whose fields disagree with its phase is caught."""
    state = StreamState(snapshot=world({"a": 0}))
    (sent,) = state.on_request(Request(TypeUrl.CLUSTER)).responses
    ts = state.types[TypeUrl.CLUSTER]
    assert violations(ts, TypeUrl.CLUSTER) == []
    ts.phase = Phase.NACKED
    ts.sent["ghost"] = sent.version_info
    assert set(violations(ts, TypeUrl.CLUSTER)) == {
        "NACKED: the latest response was rejected",
        "NACKED: its version is the rejected one",
        "the digest is that of what the client holds",
    }
