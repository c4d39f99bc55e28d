"""One stream's pending events, bounded: at most one request, one snapshot, and the end.

A stream's loop handles one event at a time and may then wait on a blocked write. Whatever
arrives meanwhile waits here, and no more than this:

- **one request**: the reader takes the next request off the wire only once the loop has
  handled the last event — responses written — and waits for the next (`wait_for_room`), so
  a client that sends faster than xdscp answers, or that never reads the answers, is held
  back by HTTP/2 flow control, not by memory;
- **one snapshot**, the latest: a newer snapshot replaces a pending one (the stream answers
  from the newest state anyway), so a stalled stream holds no chain of old snapshots;
- **the end** (the client went away, or its requests failed), handled after the pending
  request but before a pending snapshot, which nobody would read.

`asyncio.Queue` is not used: it carries three deques and an Event (about 3 KiB per instance);
thousands of streams make the difference show in the process's memory.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Generic, TypeVar

R = TypeVar("R")
S = TypeVar("S")

REQUEST: Final = "request"
SNAPSHOT: Final = "snapshot"
END: Final = "end"
_EMPTY: Any = object()


class Mailbox(Generic[R, S]):
    """Pending events of one stream, for one consumer (the loop) and one reader."""

    __slots__ = (
        "_ended", "_error", "_idle", "_request", "_room", "_snapshot", "_snapshot_first", "_waiter",
    )  # fmt: skip

    def __init__(self) -> None:
        self._request: R = _EMPTY
        self._snapshot: S = _EMPTY
        self._snapshot_first = False  # the pending snapshot arrived before the pending request
        self._ended = False
        self._idle = True  # the consumer has handled its last event (it is in `get`)
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None  # the consumer, waiting for an event
        self._room: asyncio.Future[None] | None = None  # the reader, waiting for room

    @property
    def has_request(self) -> bool:
        """True while a request waits to be taken."""
        return self._request is not _EMPTY

    def put_request(self, request: R) -> None:
        """Hand over the next request; the previous one must have been taken."""
        if self.has_request:
            raise RuntimeError("a request is already pending; await wait_for_room() first")
        self._request = request
        self._snapshot_first = self._snapshot is not _EMPTY
        self._wake()

    async def wait_for_room(self) -> None:
        """Return once no request is pending and the consumer has handled its last event."""
        while (self.has_request or not self._idle) and not self._ended:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def put_snapshot(self, snapshot: S) -> None:
        """Hand over a new snapshot, replacing one not yet taken."""
        if self._snapshot is _EMPTY:
            self._snapshot_first = not self.has_request
        self._snapshot = snapshot
        self._wake()

    def end(self, error: Exception | None = None) -> None:
        """No more requests will come; `error` (if any) is raised by `get` after the last one."""
        if not self._ended:
            self._ended, self._error = True, error
        self._wake()
        self._wake_room()

    async def get(self) -> tuple[str, Any]:
        """The next event: (REQUEST, request), (SNAPSHOT, snapshot) or (END, None).

        Calling it means the previous event has been handled: the reader may read again.
        Raises the error given to `end` in place of END.
        """
        self._idle = True
        self._wake_room()
        while True:
            event = self._take()
            if event is not None:
                self._idle = False
                return event
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _take(self) -> tuple[str, Any] | None:
        has_snapshot = self._snapshot is not _EMPTY
        if self.has_request and not (has_snapshot and self._snapshot_first and not self._ended):
            request, self._request = self._request, _EMPTY
            return REQUEST, request
        if self._ended:
            if self._error is not None:
                raise self._error
            return END, None
        if has_snapshot:
            snapshot, self._snapshot = self._snapshot, _EMPTY
            self._snapshot_first = False
            return SNAPSHOT, snapshot
        return None

    def _wake_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
