"""What changed, for the dashboard's Server-Sent Events.

The plane calls `ChangeFeed.notify("services")` after every rebuild and `notify("nodes")`
when a stream opens, closes, is pushed to or answers, and `notify("sources")` when a source
loses or regains its backend. `notify` is synchronous and cheap (a
counter and a wake-up), so it can be called from any callback on the event loop; each open
`/api/events` stream awaits `changed(seen)` and sends only the topics whose revision moved,
so a burst of changes becomes one event per topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

SERVICES = "services"
NODES = "nodes"
SOURCES = "sources"
TOPICS = (SERVICES, NODES, SOURCES)


class ChangeFeed:
    """A revision per topic, and a wake-up for everyone waiting on a change."""

    def __init__(self) -> None:
        self._revisions: dict[str, int] = dict.fromkeys(TOPICS, 0)
        self._woken = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """The server is stopping: every waiter returns (with no topics), now and later."""
        self.closed = True
        self.notify("closed")

    def notify(self, topic: str) -> None:
        """`topic` changed: bump its revision and wake every waiter."""
        if topic in self._revisions:
            self._revisions[topic] += 1
        woken, self._woken = self._woken, asyncio.Event()
        woken.set()

    def revisions(self) -> dict[str, int]:
        """Every topic's current revision."""
        return dict(self._revisions)

    async def changed(self, seen: Mapping[str, int]) -> list[str]:
        """Wait until some topic's revision differs from `seen`; return those topics ([]
        once the feed is closed)."""
        while not self.closed:
            moved = [t for t, rev in self._revisions.items() if seen.get(t) != rev]
            if moved:
                return moved
            await self._woken.wait()
        return []
