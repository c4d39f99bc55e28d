"""xdscp.testing: the shipped fakes catch what they promise to catch, and pass what is right."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.server import DeltaResponse, Response
from xdscp.testing import (
    CheckedDeltaStream,
    CheckedStream,
    Recorder,
    check_delta,
    check_sotw,
    cluster_snapshot,
    free_port,
    wait_for,
)

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT


def test_sotw_checker_rejects_a_nonce_that_does_not_increase() -> None:
    """A second response of a type with the same nonce is a protocol violation."""
    nonces: dict[str, int] = {}
    check_sotw(nonces, (Response(C, "v1", "1", ()),))
    with pytest.raises(AssertionError, match="nonces increase"):
        check_sotw(nonces, (Response(C, "v2", "1", ()),))


def test_sotw_checker_rejects_an_empty_version_and_a_foreign_type() -> None:
    """An empty version_info, or a resource of another type, fails the check."""
    with pytest.raises(AssertionError, match="version"):
        check_sotw({}, (Response(C, "", "1", ()),))
    with pytest.raises(AssertionError, match="type URL"):
        check_sotw({}, (Response(C, "v", "1", (Resource(E, "a", b"x"),)),))


def test_delta_checker_rejects_a_name_both_sent_and_removed() -> None:
    """A delta response cannot send a resource and remove it at once."""
    bad = DeltaResponse(C, "1", "v", (Resource(C, "a", b"x"),), ("a",))
    with pytest.raises(AssertionError, match="both sent and removed"):
        check_delta({}, (bad,))


def test_delta_checker_rejects_an_empty_response_of_a_served_type() -> None:
    """A delta response of a served type carries a change; an unserved type's may be empty."""
    with pytest.raises(AssertionError, match="carries a change"):
        check_delta({}, (DeltaResponse(C, "1", "v", (), ()),))
    check_delta({}, (DeltaResponse("type.googleapis.com/unknown", "1", "", (), ()),))


def test_checked_streams_drive_a_startup_and_a_change() -> None:
    """SotW and delta: CDS wildcard, EDS by name, ACKs quiet, a change pushed, all checked."""
    sotw = CheckedStream(cluster_snapshot({"a": b"1"}))
    (cds,) = sotw.ask(C)
    (eds,) = sotw.ask(E, names=("a",))
    assert sotw.ack(cds) == sotw.ack(eds, ("a",)) == ()
    assert [r.type_url for r in sotw.push(cluster_snapshot({"a": b"2"}))] == [C, E]
    delta = CheckedDeltaStream(cluster_snapshot({"a": b"1"}))
    (dcds,) = delta.ask(C)
    (deds,) = delta.ask(E, ("a",))
    assert delta.ack(dcds) == delta.ack(deds) == ()
    assert [r.type_url for r in delta.push(cluster_snapshot({"a": b"2"}))] == [C, E]
    (gone,) = delta.push(Snapshot.of([]))[:1]
    assert gone.removed == ("a",)


_worlds = st.lists(
    st.dictionaries(st.sampled_from("abcd"), st.binary(min_size=1, max_size=2), max_size=4),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(_worlds, st.booleans())
def test_any_sequence_of_snapshots_keeps_the_invariants(
    worlds: list[dict[str, bytes]], nack: bool
) -> None:
    """Whatever snapshots follow each other, answered by ACKs or NACKs, every response of
    both protocol variants passes the checks."""
    sotw, delta = CheckedStream(Snapshot.of([])), CheckedDeltaStream(Snapshot.of([]))
    sotw.ask(C)
    sotw.ask(E, names=tuple("abcd"))
    delta.ask(C)
    delta.ask(E, tuple("abcd"))
    for world in worlds:
        for r in sotw.push(cluster_snapshot(world)):
            sotw.ask(r.type_url, r.nonce, r.version_info, tuple("abcd") if r.type_url is E else (),
                     "no" if nack else None)  # fmt: skip
        for d in delta.push(cluster_snapshot(world)):
            if nack:
                delta.nack(d)
            else:
                delta.ack(d)


async def test_recorder_and_wait_for() -> None:
    """The recorder keeps every set and wakes a waiter; wait_for returns once the predicate
    holds and fails with AssertionError when it does not within the limit."""
    recorder = Recorder()
    service = Service("web", (Endpoint("10.0.0.1", 80),))
    asyncio.get_running_loop().call_soon(recorder, {"web": service})
    await wait_for(lambda: recorder.sets, limit=5.0)
    assert recorder.last == {"web": ["10.0.0.1:80"]}
    assert recorder.changed.is_set()
    with pytest.raises(AssertionError, match="not reached"):
        await wait_for(lambda: False, limit=0.05)


async def test_wait_for_awaits_a_coroutine_predicate_retries_and_returns_its_value() -> None:
    """An async predicate is awaited; the first true value is returned; an exception of
    `retry_on` counts as not yet, any other fails at once; the timeout names `what` and the
    last value seen."""
    calls: list[int] = []

    async def third_time() -> dict[str, int] | None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise OSError("not listening yet")
        return {"calls": len(calls)}

    assert await wait_for(third_time, 5.0, retry_on=(OSError,)) == {"calls": 3}
    calls.clear()
    with pytest.raises(OSError, match="not listening"):
        await wait_for(third_time, 5.0)
    with pytest.raises(AssertionError, match=r"the answer not reached .*last: 0"):
        await wait_for(lambda: 0, limit=0.05, what="the answer")


def test_free_port_is_bindable() -> None:
    """free_port returns a port on 127.0.0.1 that can be bound right away."""
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
