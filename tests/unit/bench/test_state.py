"""The simulated client's per-stream ACK/version bookkeeping and the run-wide tallies."""

from __future__ import annotations

from typing import Any

import pytest

from bench.fanout.resources import CLUSTER_TYPE, ENDPOINT_TYPE
from bench.fanout.state import Convergence, Outcome, Request, StreamState

NAMES = ("svc-00", "svc-01", "svc-02")


def primed() -> StreamState:
    """A stream that received the clusters and subscribed to their CLAs."""
    state = StreamState()
    state.on_response(CLUSTER_TYPE, "c1", "n1", NAMES, ())
    return state


def test_stream_opens_with_wildcard_cds() -> None:
    """The first request is CDS with no names, no version and no nonce."""
    assert StreamState().start() == Request(CLUSTER_TYPE, "", "", ())


def test_clusters_subscribe_eds_before_acking_cds() -> None:
    """New cluster names lead to an EDS subscription (sorted names), then the CDS ACK."""
    outcome = StreamState().on_response(CLUSTER_TYPE, "c1", "n1", reversed(NAMES), ())
    assert outcome.requests == (
        Request(ENDPOINT_TYPE, "", "", NAMES),
        Request(CLUSTER_TYPE, "c1", "n1", ()),
    )
    assert not outcome.became_ready


@pytest.mark.parametrize(
    ("responses", "expected"),
    [
        pytest.param(
            [(ENDPOINT_TYPE, "e0", "n2", NAMES, ())],
            Outcome((Request(ENDPOINT_TYPE, "e0", "n2", NAMES),), True, frozenset()),
            id="all-clas-in-one-response",
        ),
        pytest.param(
            [(ENDPOINT_TYPE, "e0", "n2", NAMES[:2], ())],
            Outcome((Request(ENDPOINT_TYPE, "e0", "n2", NAMES),), False, frozenset()),
            id="partial-response-not-ready",
        ),
        pytest.param(
            [
                (ENDPOINT_TYPE, "e0", "n2", NAMES[:2], ()),
                (ENDPOINT_TYPE, "e1", "n3", NAMES[2:], ()),
            ],
            Outcome((Request(ENDPOINT_TYPE, "e1", "n3", NAMES),), True, frozenset()),
            id="ready-once-union-covers-subscription",
        ),
        pytest.param(
            [(ENDPOINT_TYPE, "e0", "n2", NAMES, ()), (ENDPOINT_TYPE, "e1", "n3", NAMES, (4,))],
            Outcome((Request(ENDPOINT_TYPE, "e1", "n3", NAMES),), False, frozenset({4})),
            id="change-acked-with-its-version-and-nonce-ready-only-once",
        ),
        pytest.param(
            [(ENDPOINT_TYPE, "e1", "n2", NAMES, (4,)), (ENDPOINT_TYPE, "e2", "n3", NAMES, (4, 5))],
            Outcome((Request(ENDPOINT_TYPE, "e2", "n3", NAMES),), False, frozenset({5})),
            id="marker-reported-only-the-first-time",
        ),
        pytest.param(
            [(ENDPOINT_TYPE, "e0", "n2", ("svc-99",), ())],
            Outcome((Request(ENDPOINT_TYPE, "e0", "n2", NAMES),), False, frozenset()),
            id="unsubscribed-cla-does-not-count",
        ),
        pytest.param(
            [("type.googleapis.com/other", "x", "n9", (), ())],
            Outcome(),
            id="unknown-type-ignored",
        ),
    ],
)
def test_endpoint_responses(responses: list[tuple[Any, ...]], expected: Outcome) -> None:
    """Each EDS response is ACKed with its own version and nonce and the subscription."""
    state = primed()
    outcome = Outcome()
    for response in responses:
        outcome = state.on_response(*response)
    assert outcome == expected
    assert state.cds_version == "c1"


def test_same_clusters_again_only_acks() -> None:
    """A CDS push with the same names is ACKed without a new EDS request."""
    state = primed()
    outcome = state.on_response(CLUSTER_TYPE, "c2", "n5", NAMES, ())
    assert outcome.requests == (Request(CLUSTER_TYPE, "c2", "n5", ()),)


def test_changed_clusters_resubscribe_with_last_eds_version() -> None:
    """A new cluster set re-subscribes EDS carrying the last accepted EDS version."""
    state = primed()
    state.on_response(ENDPOINT_TYPE, "e0", "n2", NAMES, ())
    outcome = state.on_response(CLUSTER_TYPE, "c2", "n5", (*NAMES, "svc-03"), ())
    assert outcome.requests[0] == Request(ENDPOINT_TYPE, "e0", "", (*NAMES, "svc-03"))
    assert outcome.requests[1] == Request(CLUSTER_TYPE, "c2", "n5", ())
    assert not outcome.became_ready  # svc-03's CLA has not arrived


def test_convergence_counts_streams_and_changes() -> None:
    """All-ready and all-ACKed fire exactly when the last stream reports; unarmed is ignored."""
    tally = Convergence(streams=2)
    assert tally.stream_ready(1.0) is False
    assert tally.stream_ready(3.0) is True
    assert (tally.first_ready, tally.last_ready) == (1.0, 3.0)
    assert tally.change_acked(7, 4.0) is False  # not armed
    tally.arm(7)
    assert tally.change_acked(7, 5.0) is False
    assert tally.change_acked(7, 6.5) is True
    assert (tally.first_ack[7], tally.last_ack[7], tally.acked[7]) == (5.0, 6.5, 2)
