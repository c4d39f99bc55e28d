"""A fake etcd served in-process over grpc.aio: KV, Watch and Lease, on 127.0.0.1.

`FakeEtcd` speaks etcd v3's gRPC API (the subset xdscp uses), so `EtcdClient` talks to it
unchanged: `async with FakeEtcd() as etcd: EtcdClient(etcd.config())`. The state machine is
`xdscp.testing.etcd_store.Store` (I/O-free); this module only moves messages and time.

Time: with a `ManualClock` leases expire only when the test says so (`etcd.advance(30)`),
with no sleeping; with the default monotonic clock they expire on their own, like etcd's.
Not implemented: authentication, TLS, clusters (one member), progress notifications,
fragments, sorting and filters (refused with UNIMPLEMENTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any, Self

import grpc

from xdscp.etcd import EtcdConfig
from xdscp.etcd._proto.etcdserverpb import rpc_pb2_grpc
from xdscp.testing.etcd_services import Clock, KvServicer, LeaseServicer, ManualClock, Shared
from xdscp.testing.etcd_store import Store
from xdscp.testing.etcd_watch import WatchServicer


class FakeEtcd:
    """A one-member fake etcd on 127.0.0.1 (a free port); `async with FakeEtcd():`."""

    def __init__(self, *, clock: Clock | None = None, min_lease_ttl: int = 1) -> None:
        self.clock: Clock = clock or time.monotonic
        self.store = Store(min_lease_ttl=min_lease_ttl)
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._shared: Shared | None = None

    @property
    def url(self) -> str:
        """The client URL (`http://127.0.0.1:PORT`)."""
        return f"http://127.0.0.1:{self.port}"

    def config(self, **overrides: Any) -> EtcdConfig:
        """An `EtcdConfig` pointing at this fake (same shape as a real server's)."""
        settings: dict[str, Any] = {"endpoints": (self.url,), "connect_timeout": 1.0}
        return EtcdConfig(**(settings | overrides))

    async def start(self) -> None:
        """Serve on a free loopback port."""
        shared = self._shared = Shared(self.store, self.clock)
        server = self._server = grpc.aio.server()
        rpc_pb2_grpc.add_KVServicer_to_server(KvServicer(shared), server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseServicer(shared), server)
        rpc_pb2_grpc.add_WatchServicer_to_server(WatchServicer(shared), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        if not isinstance(self.clock, ManualClock):
            self._timer = asyncio.create_task(self._expire_on_time(shared))

    async def _expire_on_time(self, shared: Shared) -> None:
        """With a real clock: revoke each lease when its TTL runs out."""
        while True:
            deadline = self.store.next_deadline()
            shared.leases_changed.clear()
            wait = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await shared.leases_changed.wait()
            shared.expire()

    def advance(self, seconds: float) -> None:
        """Move a `ManualClock` forward and expire the leases whose TTL ran out."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs FakeEtcd(clock=ManualClock())")
        self.clock.advance(seconds)
        if self._shared is not None:
            self._shared.expire()

    async def stop(self) -> None:
        """Stop serving; open streams end."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.wait([self._timer])
            self._timer = None
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


__all__ = ["Clock", "FakeEtcd", "ManualClock"]
