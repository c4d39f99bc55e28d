"""Prefix watches: the raw resuming stream and `PrefixWatcher`, the list-then-watch loop.

The revision bookkeeping lives in `PrefixMirror` (I/O-free); this module only moves messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import structlog

from xdscp.errors import EtcdCompactedError, EtcdError, EtcdUnavailableError
from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.etcd.client import EtcdClient
from xdscp.etcd.mirror import PrefixMirror
from xdscp.etcd.rpc_errors import AuthExpiredError, etcd_errors
from xdscp.etcd.types import WatchEvent, event_from_pb, prefix_range_end
from xdscp.retry import Backoff

log = structlog.get_logger("xdscp.etcd")

StatusCallback = Callable[[bool, str], None]
"""Told `(True, "")` when etcd answers again and `(False, reason)` when it stops answering."""


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: its events, a progress notification when `progress`, or etcd's
    acknowledgement of the watch when `created` (the connection works: nothing else to use —
    its revision says nothing about what was delivered, watch rule 2)."""

    events: tuple[WatchEvent, ...]
    header_revision: int
    progress: bool
    created: bool = False


def _batch(response: rpc_pb2.WatchResponse) -> WatchBatch:
    """Turn a response into a batch."""
    if response.canceled:
        if response.compact_revision:
            raise EtcdCompactedError(int(response.compact_revision))
        reason = response.cancel_reason or "watch canceled by etcd"
        if "future revision" in reason:
            # etcd's history is behind ours (restored from an older backup): re-list, as
            # after a compaction, so the mirror follows what etcd holds now.
            raise EtcdCompactedError(0)
        if "auth" in reason or "permission" in reason:
            raise AuthExpiredError(reason)
        raise EtcdError(reason)
    if response.created:
        return WatchBatch((), int(response.header.revision), progress=False, created=True)
    events = tuple(event_from_pb(e) for e in response.events)
    return WatchBatch(events, int(response.header.revision), progress=not events)


async def watch_prefix(
    client: EtcdClient, prefix: bytes, start_revision: int
) -> AsyncIterator[WatchBatch]:
    """Watch every key under `prefix` from `start_revision` until the stream breaks.

    Raises EtcdCompactedError when `start_revision` was compacted, EtcdUnavailableError when
    the connection is lost; the caller resumes (see `PrefixWatcher`).
    """
    await client.connected()
    metadata = await client.metadata()
    create = rpc_pb2.WatchCreateRequest(
        key=prefix,
        range_end=prefix_range_end(prefix),
        start_revision=start_revision,
        progress_notify=True,
        fragment=True,  # a large catch-up arrives in pieces below the receive limit
    )
    call = client.stub("Watch").Watch(metadata=metadata, wait_for_ready=True)
    try:
        with etcd_errors("Watch"):
            await call.write(rpc_pb2.WatchRequest(create_request=create))
            pieces: list[WatchEvent] = []
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise EtcdUnavailableError("watch stream closed by etcd")
                batch = _batch(response)
                if batch.created:
                    yield batch
                    continue
                if response.fragment:  # more of the same revision's events follow
                    pieces.extend(batch.events)
                    continue
                if pieces:
                    pieces.extend(batch.events)
                    batch = WatchBatch(tuple(pieces), batch.header_revision, progress=False)
                    pieces = []
                yield batch
    finally:
        call.cancel()


class PrefixWatcher:
    """Keeps a `PrefixMirror` identical to etcd's content under a prefix, across failures.

    `changes()` yields the list of changes each time the mirror changes (the first yield is
    the initial listing, possibly empty). Outages are retried with bounded backoff; the mirror
    keeps its content meanwhile.
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        *,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.mirror = PrefixMirror()
        self._client = client
        self._prefix = prefix
        self._on_status = on_status
        self._healthy: bool | None = None
        self._relist = True

    def _status(self, healthy: bool, reason: str = "") -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        prefix = self._prefix.decode(errors="replace")
        if healthy:
            log.info("etcd_watch_connected", prefix=prefix)
        else:
            log.warning("etcd_watch_unavailable", prefix=prefix, reason=reason)
        if self._on_status is not None:
            self._on_status(healthy, reason)

    async def changes(self) -> AsyncIterator[list[WatchEvent]]:
        """Yield the changes to the mirror, forever (until the caller stops iterating)."""
        backoff = Backoff(0.05, self._client.config.max_backoff)
        while True:
            try:
                if self._relist:
                    kvs, revision = await self._client.get_prefix(self._prefix)
                    self._relist = False
                    self._status(True)
                    yield self.mirror.load(kvs, revision)
                start = self.mirror.next_watch_revision
                async for batch in watch_prefix(self._client, self._prefix, start):
                    self._status(True)  # etcd answers: "created" counts (a quiet prefix)
                    backoff.reset()
                    if batch.created:
                        continue
                    if batch.progress:
                        self.mirror.progress(batch.header_revision)
                        continue
                    applied = self.mirror.apply(batch.events)
                    if applied:
                        yield applied
            except EtcdCompactedError as exc:
                log.warning("etcd_watch_compacted", compact_revision=exc.compact_revision)
                self._relist = True
            except AuthExpiredError:
                self._client.forget_token()
                await asyncio.sleep(backoff.next_delay())
            except EtcdError as exc:
                self._status(False, str(exc))
                await asyncio.sleep(backoff.next_delay())
