"""The fake etcd's unary services and what every servicer shares: the store, the clock and
the wake-ups (no sockets here: `xdscp.testing.etcd_server` serves them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from xdscp.etcd._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from xdscp.testing import etcd_wire as wire
from xdscp.testing.etcd_store import Store, StoreError

Clock = Callable[[], float]
"""Seconds on a monotonic clock."""


class ManualClock:
    """A clock that moves only when told (`advance`)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class Shared:
    """The store, the clock and the wake-ups every servicer shares."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.streams: set[asyncio.Event] = set()  # one per open watch stream
        self.leases_changed = asyncio.Event()

    def expire(self) -> None:
        """Revoke the leases whose TTL ran out (before any request is answered)."""
        if self.store.expire(self.clock()):
            self.changed()

    def changed(self) -> None:
        """Wake every watch stream (new events may be pending) and the lease timer."""
        for wake in self.streams:
            wake.set()
        self.leases_changed.set()

    async def run(self, method: Callable[[], Any], context: Any, *, writes: bool) -> Any:
        """Answer a unary request: expiry first, etcd's status on `StoreError`, the header."""
        self.expire()
        try:
            response = method()
        except StoreError as exc:
            self.store.commit()  # nothing was written: a refused request is checked first
            code, message = exc.kind.value
            await context.abort(getattr(grpc.StatusCode, code), message)
            raise  # abort raises; this line is never reached
        if writes:
            self.store.commit()
            self.changed()
        response.header.CopyFrom(wire.header(self.store))
        return response


class KvServicer(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]
    """etcd's KV service."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    async def Range(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        return await self._shared.run(
            lambda: wire.range_(self._shared.store, request), context, writes=False
        )

    async def Put(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._shared.run(
            lambda: wire.put(self._shared.store, request), context, writes=True
        )

    async def DeleteRange(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._shared.run(
            lambda: wire.delete_range(self._shared.store, request), context, writes=True
        )

    async def Txn(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._shared.run(
            lambda: wire.txn(self._shared.store, request), context, writes=True
        )

    async def Compact(self, request: Any, context: Any) -> Any:  # noqa: N802
        def compact() -> Any:
            self._shared.store.compact(int(request.revision))
            return rpc_pb2.CompactionResponse()

        return await self._shared.run(compact, context, writes=False)


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):  # type: ignore[misc]
    """etcd's Lease service."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    async def LeaseGrant(self, request: Any, context: Any) -> Any:  # noqa: N802
        def grant() -> Any:
            lease = self._shared.store.grant(
                int(request.TTL), self._shared.clock(), int(request.ID)
            )
            return rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)

        return await self._shared.run(grant, context, writes=True)

    async def LeaseRevoke(self, request: Any, context: Any) -> Any:  # noqa: N802
        def revoke() -> Any:
            self._shared.store.revoke(int(request.ID))
            return rpc_pb2.LeaseRevokeResponse()

        return await self._shared.run(revoke, context, writes=True)

    async def LeaseTimeToLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        def ttl() -> Any:
            left, granted, keys = self._shared.store.time_to_live(
                int(request.ID), self._shared.clock()
            )
            shown = keys if request.keys else []
            return rpc_pb2.LeaseTimeToLiveResponse(
                ID=request.ID, TTL=left, grantedTTL=granted, keys=shown
            )

        return await self._shared.run(ttl, context, writes=False)

    async def LeaseKeepAlive(  # noqa: N802
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        del context
        async for request in request_iterator:
            self._shared.expire()
            ttl = self._shared.store.keep_alive(int(request.ID), self._shared.clock())
            self._shared.changed()
            yield rpc_pb2.LeaseKeepAliveResponse(
                header=wire.header(self._shared.store), ID=request.ID, TTL=ttl
            )
