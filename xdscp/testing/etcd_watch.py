"""The fake etcd's Watch service: one bidirectional stream, any number of watches on it.

As etcd: each create request is answered `created` with the watch's id (numbered from 0 on
each stream), then its events — the history from its start revision, then every change as
it is written; a watch starting below the compacted revision gets, after `created`, a
`canceled` response carrying `compact_revision`. Cancel requests are answered `canceled`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from xdscp.etcd._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from xdscp.testing import etcd_wire as wire
from xdscp.testing.etcd_services import Shared
from xdscp.testing.etcd_store import StoreError, StoreErrorKind, Watcher


class _Stream:
    """One Watch call: its requests not yet answered, its watches, its wake-up."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.requests: deque[Any] = deque()
        self.watchers: dict[int, Watcher] = {}
        self.wake = asyncio.Event()
        self.closed = False
        self._ids = itertools.count()

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Queue the client's requests until it half-closes."""
        try:
            async for request in requests:
                self.requests.append(request)
                self.wake.set()
        finally:
            self.closed = True
            self.wake.set()

    def responses(self) -> Iterator[Any]:
        """Everything to send now: answers to the queued requests, then pending events."""
        self.shared.expire()
        while self.requests:
            yield from self._answer(self.requests.popleft())
        store = self.shared.store
        for watch_id, watcher in self.watchers.items():
            events = watcher.take()
            if events:
                yield rpc_pb2.WatchResponse(
                    header=wire.header(store), watch_id=watch_id,
                    events=[wire.event_pb(e) for e in events],
                )  # fmt: skip

    def _answer(self, request: Any) -> Iterator[Any]:
        store = self.shared.store
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            yield from self._create(request.create_request)
        elif kind == "cancel_request":
            watch_id = int(request.cancel_request.watch_id)
            watcher = self.watchers.pop(watch_id, None)
            if watcher is not None:
                store.cancel_watch(watcher.id)
            yield rpc_pb2.WatchResponse(header=wire.header(store), watch_id=watch_id, canceled=True)
        elif kind == "progress_request":
            yield rpc_pb2.WatchResponse(header=wire.header(store), watch_id=-1)

    def _create(self, create: Any) -> Iterator[Any]:
        store = self.shared.store
        watch_id = int(create.watch_id) or next(self._ids)
        created = rpc_pb2.WatchResponse(header=wire.header(store), watch_id=watch_id, created=True)
        if create.filters or create.prev_kv:
            created.canceled = True
            created.cancel_reason = StoreErrorKind.UNSUPPORTED.value[1]
            yield created
            return
        try:
            watcher = store.watch(
                bytes(create.key), bytes(create.range_end), int(create.start_revision)
            )
        except StoreError:
            yield created
            yield rpc_pb2.WatchResponse(
                header=rpc_pb2.ResponseHeader(cluster_id=wire.CLUSTER_ID, member_id=wire.MEMBER_ID),
                watch_id=watch_id, canceled=True, compact_revision=store.compact_revision,
            )  # fmt: skip
            return
        self.watchers[watch_id] = watcher
        yield created

    def close(self) -> None:
        """Forget this stream's watches."""
        for watcher in self.watchers.values():
            self.shared.store.cancel_watch(watcher.id)
        self.watchers.clear()


class WatchServicer(rpc_pb2_grpc.WatchServicer):  # type: ignore[misc]
    """etcd's Watch service."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    async def Watch(  # noqa: N802 - gRPC's name
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> None:
        stream = _Stream(self._shared)
        self._shared.streams.add(stream.wake)
        reader = asyncio.create_task(stream.read(request_iterator))
        try:
            while True:
                stream.wake.clear()
                for response in list(stream.responses()):
                    await context.write(response)
                if stream.closed and not stream.requests:
                    return
                await stream.wake.wait()
        finally:
            self._shared.streams.discard(stream.wake)
            stream.close()
            reader.cancel()
