"""A delta type's phase moves only along `DELTA_TRANSITIONS`, and no conversation (any
(un)subscriptions, nonces, NACKs and snapshots, in any order) reaches an illegal combination."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.server.conversations import NAMES, TYPES, names, snapshots, world
from xdscp.cache import TypeUrl
from xdscp.server.delta import DeltaRequest, DeltaStreamState
from xdscp.server.delta_phases import (
    DELTA_TRANSITIONS,
    DeltaStep,
    delta_moved,
    delta_violations,
)
from xdscp.server.phases import IllegalTransitionError, Phase
from xdscp.server.rules import RequestKind

_requests = st.tuples(
    st.just("request"),
    st.sampled_from(TYPES),
    names,  # subscribe
    names,  # unsubscribe
    st.sampled_from(("none", "latest", "earliest", "bogus")),
    st.booleans(),  # a NACK
    st.dictionaries(st.sampled_from(NAMES), st.sampled_from(("v0", "x"))),  # initial versions
)


def _nonce(state: DeltaStreamState, type_url: TypeUrl, choice: str) -> str:
    ts = state.types.get(type_url)
    pending = sorted(ts.pending, key=int) if ts is not None else []
    latest = ts.sent_nonce if ts is not None else ""
    return {"none": "", "latest": latest, "earliest": (pending or ["1"])[0], "bogus": "99"}[choice]


def _expected(state: DeltaStreamState, type_url: TypeUrl, step: tuple[Any, ...]) -> Phase | None:
    """The phase a request's answer leaves, when the answer alone decides it (a request that
    also (un)subscribes may settle the type, or send)."""
    ts = state.types.get(type_url)
    if ts is None or step[2] or step[3] or ts.sent_nonce not in ts.pending:
        return None
    return {"latest": Phase.NACKED if step[5] else Phase.ACKED}.get(step[4])


def _request(state: DeltaStreamState, step: tuple[Any, ...]) -> None:
    _, type_url, subscribe, unsubscribe, choice, nack, initial = step
    nonce = _nonce(state, type_url, choice)
    expected = _expected(state, type_url, step)
    error = "rejected" if nack and nonce else None
    request = DeltaRequest(type_url, subscribe, unsubscribe, initial, nonce, error)
    handled = state.on_request(request)
    if any(r.type_url == type_url for r in handled.responses):
        expected = Phase.SENT
    elif handled.answer.kind is RequestKind.INITIAL:
        expected = Phase.REQUESTED
    if expected is not None:
        assert state.types[type_url].phase is expected, (handled.answer, expected)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_requests | snapshots, max_size=25))
def test_no_delta_conversation_reaches_an_illegal_state(steps: list[tuple[Any, ...]]) -> None:
    """After every request and every snapshot, each type's fields agree with its phase and
    with each other; an answer to the latest response leaves the phase its kind says (SENT
    when the request was answered at once); no move outside the table is ever taken."""
    state = DeltaStreamState(snapshot=world({"a": 0, "b": 0}))
    for step in steps:
        if step[0] == "snapshot":
            state.on_snapshot(world(step[1]))
        else:
            _request(state, step)
        for type_url, ts in state.types.items():
            assert delta_violations(ts, type_url) == [], (type_url, ts)


def test_the_table_reaches_every_phase_but_the_first_and_refuses_the_rest() -> None:
    """Each phase is reachable, nothing leads back to UNSUBSCRIBED, and a move the table lacks
    (an ACK before anything was sent, settling while the latest response awaits) is refused."""
    assert set(DELTA_TRANSITIONS.values()) == set(Phase) - {Phase.UNSUBSCRIBED}
    assert delta_moved(Phase.NACKED, DeltaStep.SETTLE) is Phase.ACKED
    for phase, step in [
        (Phase.REQUESTED, DeltaStep.ACK),
        (Phase.SENT, DeltaStep.SETTLE),
        (Phase.ACKED, DeltaStep.NACK),
        (Phase.NACKED, DeltaStep.SUBSCRIBE),
    ]:
        with pytest.raises(IllegalTransitionError):
            delta_moved(phase, step)


def test_a_broken_delta_state_is_reported() -> None:
    """The checker is not vacuous: fields that disagree with the phase or each other are
    caught (here: a held name the client does not subscribe to, a NACK-less NACKED phase)."""
    state = DeltaStreamState(snapshot=world({"a": 0}))
    state.on_request(DeltaRequest(TypeUrl.ENDPOINT, subscribe=("a",)))
    ts = state.types[TypeUrl.ENDPOINT]
    assert (ts.phase, delta_violations(ts, TypeUrl.ENDPOINT)) == (Phase.SENT, [])
    ts.phase = Phase.NACKED
    ts.tell((("ghost", ts.hold(ts.held, "ghost", "v1"), "v1"),))
    ts.pending[ts.sent_nonce] = (*ts.pending[ts.sent_nonce], ("ghost", None, "v1"))
    ts.digest ^= 1
    assert set(delta_violations(ts, TypeUrl.ENDPOINT)) == {
        "SENT exactly while the latest response awaits an answer",
        "NACKED: the latest version rejected",
        "held names are subscribed ones",
        "names awaiting an answer are subscribed ones",
        "the digest is that of what the client holds",
        "the responses awaiting an answer as told are those",
    }


@pytest.mark.parametrize("latest_error", [None, "also bad"])
def test_a_nack_of_an_earlier_response_after_the_latest_was_answered_is_a_rejection(
    latest_error: str | None,
) -> None:
    """Two responses in flight: the client answers the latest (ACK or NACK), then NACKs the
    earlier one; the type is NACKED until a newer version is sent (the rejected one is not
    sent again)."""
    e = TypeUrl.ENDPOINT
    state = DeltaStreamState(snapshot=world({"a": 0}))
    (first,) = state.on_request(DeltaRequest(e, subscribe=("a",))).responses
    (second,) = state.on_request(DeltaRequest(e, subscribe=("b",))).responses
    ts = state.types[e]
    state.on_request(DeltaRequest(e, response_nonce=second.nonce, error_message=latest_error))
    assert ts.phase is (Phase.ACKED if latest_error is None else Phase.NACKED)
    outcome = state.on_request(DeltaRequest(e, response_nonce=first.nonce, error_message="bad"))
    assert (outcome.answer.kind, ts.phase) == (RequestKind.NACK, Phase.NACKED)
    assert delta_violations(ts, e) == []
    assert state.on_snapshot(world({"a": 0})) == ()  # a@0 rejected: nothing to send
    assert ts.phase is Phase.NACKED
    (newer,) = state.on_snapshot(world({"a": 1}))
    assert ([r.name for r in newer.resources], ts.phase) == (["a"], Phase.SENT)
