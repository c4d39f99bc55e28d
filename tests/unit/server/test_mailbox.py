"""The per-stream mailbox holds at most one request and the latest snapshot, in order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.server.mailbox import END, REQUEST, SNAPSHOT, Mailbox

# put a request (when there is room), put a snapshot, take one event
_OPS = st.lists(st.sampled_from(["request", "snapshot", "take"]), max_size=60)


@given(_OPS)
def test_every_request_once_in_order_and_only_the_latest_snapshot(ops: list[str]) -> None:
    """Requests come out once each, in order; a snapshot taken is the newest put before it;
    a snapshot replaced before being taken is never seen; at most one request is pending."""

    async def scenario() -> None:
        box: Mailbox[int, int] = Mailbox()
        requests = snapshots = 0
        taken_requests: list[int] = []
        latest_snapshot: int | None = None
        for op in ops:
            if op == "request" and not box.has_request:
                requests += 1
                box.put_request(requests)
            elif op == "snapshot":
                snapshots += 1
                box.put_snapshot(snapshots)
                latest_snapshot = snapshots
            elif op == "take" and (box.has_request or latest_snapshot is not None):
                kind, value = await box.get()
                if kind == REQUEST:
                    taken_requests.append(value)
                else:
                    assert kind == SNAPSHOT
                    assert value == latest_snapshot
                    latest_snapshot = None
        box.end()
        while True:
            kind, value = await box.get()
            if kind == END:
                break
            assert kind == REQUEST  # after the end, a pending snapshot is dropped
            taken_requests.append(value)
        assert taken_requests == list(range(1, requests + 1))

    asyncio.run(scenario())


async def test_the_reader_waits_until_the_loop_has_handled_the_last_event() -> None:
    """A second pending request is refused; `wait_for_room` returns only once the loop has
    taken the request *and handled it* (it is back in `get`), or once the mailbox ended."""
    box: Mailbox[str, str] = Mailbox()
    async with asyncio.timeout(1):
        await box.wait_for_room()  # nothing pending, nothing being handled
    box.put_request("a")
    with pytest.raises(RuntimeError):
        box.put_request("b")
    waiting = asyncio.create_task(box.wait_for_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    assert await box.get() == (REQUEST, "a")
    box.put_snapshot("s")
    assert await box.get() == (SNAPSHOT, "s")  # the loop handles "a", then "s" (writes block)
    await asyncio.sleep(0)
    assert not waiting.done()  # handling: no reading meanwhile
    next_event = asyncio.create_task(box.get())  # handled: back in get
    async with asyncio.timeout(1):
        await waiting
    box.put_request("b")
    assert await next_event == (REQUEST, "b")
    blocked = asyncio.create_task(box.wait_for_room())
    box.end()
    async with asyncio.timeout(1):
        await blocked


async def test_arrival_order_between_a_request_and_a_snapshot() -> None:
    """Whichever of a request and a snapshot arrived first is handed out first."""
    box: Mailbox[str, str] = Mailbox()
    box.put_snapshot("s1")
    box.put_request("r1")
    box.put_snapshot("s2")  # replaces s1, keeps its place before r1
    assert await box.get() == (SNAPSHOT, "s2")
    assert await box.get() == (REQUEST, "r1")
    box.put_request("r2")
    box.put_snapshot("s3")
    assert await box.get() == (REQUEST, "r2")
    assert await box.get() == (SNAPSHOT, "s3")


async def test_the_error_given_to_end_is_raised_after_the_pending_request() -> None:
    """A reader failure (an undecodable request) surfaces after what was read before it."""
    box: Mailbox[str, str] = Mailbox()
    box.put_request("r1")
    box.end(ValueError("bad bytes"))
    assert await box.get() == (REQUEST, "r1")
    with pytest.raises(ValueError, match="bad bytes"):
        await box.get()
