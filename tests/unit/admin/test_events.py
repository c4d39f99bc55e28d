"""The change feed behind `/api/events`: a waiter wakes on the next change and learns which
topics moved; a burst of changes is one wake-up."""

from __future__ import annotations

import asyncio

from xdscp.admin import NODES, SERVICES, SOURCES, ChangeFeed


async def test_a_waiter_wakes_with_the_topic_that_changed() -> None:
    """`changed(seen)` blocks until a revision moves, then names only that topic."""
    feed = ChangeFeed()
    seen = feed.revisions()
    waiter = asyncio.create_task(feed.changed(seen))
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.notify(NODES)
    assert await asyncio.wait_for(waiter, 5) == [NODES]
    assert feed.revisions() == {SERVICES: 0, NODES: 1, SOURCES: 0}


async def test_changes_before_waiting_are_not_lost_and_bursts_coalesce() -> None:
    """Changes made before `changed` is awaited are returned at once; three notifies of one
    topic are one answer."""
    feed = ChangeFeed()
    seen = feed.revisions()
    for _ in range(3):
        feed.notify(SERVICES)
    feed.notify(NODES)
    assert sorted(await asyncio.wait_for(feed.changed(seen), 5)) == [NODES, SERVICES]
    assert feed.revisions()[SERVICES] == 3


async def test_every_waiter_is_woken() -> None:
    """Two open event streams both learn of one change."""
    feed = ChangeFeed()
    seen = feed.revisions()
    waiters = [asyncio.create_task(feed.changed(seen)) for _ in range(2)]
    await asyncio.sleep(0)
    feed.notify(SERVICES)
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [[SERVICES], [SERVICES]]
