"""A small asyncio etcd v3 client on grpc.aio: KV, leases, auth, failover, TLS.

Only what xdscp needs. gRPC errors are mapped into `xdscp.errors` here, at the boundary.
Idempotent calls (Range, Put, DeleteRange, LeaseRevoke, LeaseTimeToLive) are retried across
endpoints until `request_timeout`; Txn and LeaseGrant are never retried blindly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import structlog

from xdscp.errors import EtcdError, EtcdTooLargeError, EtcdUnavailableError
from xdscp.etcd._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from xdscp.etcd.config import EtcdConfig, EtcdEndpoint
from xdscp.etcd.rpc_errors import (
    AuthExpiredError,
    etcd_errors,
    map_rpc_error,
)
from xdscp.etcd.types import KeyValue, kv_from_pb, prefix_range_end
from xdscp.retry import Backoff

log = structlog.get_logger("xdscp.etcd")

_STUBS = {
    "KV": rpc_pb2_grpc.KVStub,
    "Lease": rpc_pb2_grpc.LeaseStub,
    "Auth": rpc_pb2_grpc.AuthStub,
    "Watch": rpc_pb2_grpc.WatchStub,
}


async def _connect(channel: grpc.aio.Channel, *, leave_on_failure: bool) -> bool:
    """Wait until the channel is READY (True); with `leave_on_failure`, False as soon as a
    connection attempt failed (TRANSIENT_FAILURE: refused, reset) instead of waiting for
    gRPC's next attempt on the same member."""
    while True:
        state = channel.get_state(try_to_connect=True)
        if state is grpc.ChannelConnectivity.READY:
            return True
        if leave_on_failure and state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return False
        await channel.wait_for_state_change(state)


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class EtcdClient:
    """One logical connection to an etcd cluster. Use as `async with EtcdClient(config):`."""

    def __init__(self, config: EtcdConfig | None = None) -> None:
        self.config = config or EtcdConfig()
        self._endpoints = self.config.parsed_endpoints()
        self._index = 0
        self._channel: grpc.aio.Channel | None = None
        self._stubs: dict[str, Any] = {}
        self._token: str | None = None
        self._credentials: grpc.ChannelCredentials | None = None
        if self.config.tls:
            self._credentials = grpc.ssl_channel_credentials(
                _read(self.config.ca_file),
                _read(self.config.key_file),
                _read(self.config.cert_file),
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def endpoint(self) -> EtcdEndpoint:
        """The endpoint currently used."""
        return self._endpoints[self._index]

    async def close(self) -> None:
        """Close the channel; in-flight calls fail."""
        channel, self._channel, self._stubs = self._channel, None, {}
        if channel is not None:
            await channel.close()

    def _open(self, endpoint: EtcdEndpoint) -> grpc.aio.Channel:
        options = [
            ("grpc.max_receive_message_length", self.config.max_receive_bytes),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", int(self.config.max_backoff * 1000)),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
        ]
        if self._credentials is not None:
            return grpc.aio.secure_channel(endpoint.target, self._credentials, options)
        return grpc.aio.insecure_channel(endpoint.target, options)

    async def _rotate(self, failed: grpc.aio.Channel | None) -> None:
        """Move to the next endpoint, unless another task already did."""
        if failed is not None and failed is not self._channel:
            return
        old, self._channel, self._stubs = self._channel, None, {}
        self._index = (self._index + 1) % len(self._endpoints)
        if old is not None:
            await old.close()

    async def _ready(self) -> grpc.aio.Channel:
        """A connected channel, trying each endpoint once for `connect_timeout`.

        With several members, one whose connection attempt fails (refused, reset) is left at
        once for the next: waiting out the connect timeout on a dead member could outlast a
        short lease's TTL. Alone, an endpoint is waited for (gRPC reconnects by itself).
        """
        for _ in range(len(self._endpoints)):
            if self._channel is None:
                self._channel = self._open(self.endpoint)
            channel = self._channel
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    ready = await _connect(channel, leave_on_failure=len(self._endpoints) > 1)
            except grpc.aio.UsageError:
                continue  # another task rotated and closed this channel meanwhile
            except TimeoutError:
                ready = False
            if ready:
                return channel
            log.warning("etcd_endpoint_unreachable", endpoint=str(self.endpoint))
            await self._rotate(channel)
        names = ", ".join(str(e) for e in self._endpoints)
        raise EtcdUnavailableError(f"no etcd endpoint reachable ({names})")

    def stub(self, service: str) -> Any:
        """The generated stub of `service` on the current channel (call `connected` first)."""
        if self._channel is None:
            raise EtcdUnavailableError("not connected (the channel was just rotated)")
        if service not in self._stubs:
            self._stubs[service] = _STUBS[service](self._channel)
        return self._stubs[service]

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the auth token when a user is configured (authenticating if needed)."""
        if self.config.username is None:
            return ()
        if self._token is None:
            request = rpc_pb2.AuthenticateRequest(
                name=self.config.username, password=self.config.password
            )
            try:
                response = await self.stub("Auth").Authenticate(
                    request, timeout=self.config.request_timeout, wait_for_ready=True
                )
            except grpc.aio.AioRpcError as exc:
                raise map_rpc_error("Authenticate", exc) from None
            self._token = str(response.token)
        return (("token", self._token),)

    def forget_token(self) -> None:
        """Drop the auth token so the next call authenticates again."""
        self._token = None

    async def connected(self) -> None:
        """Wait for a usable channel (raises EtcdUnavailableError when none)."""
        await self._ready()

    async def call(self, service: str, method: str, request: Any, *, idempotent: bool) -> Any:
        """Run one unary RPC with auth, failover and (when idempotent) retries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout
        backoff = Backoff(0.05, self.config.max_backoff)
        auth_retried = False
        while True:
            channel = await self._ready()
            try:
                with etcd_errors(f"{service}.{method}"):
                    metadata = await self.metadata()
                    # An attempt may hang while etcd elects a new leader: give it a third of
                    # the budget so an idempotent call can be retried (on another member).
                    attempt = min(deadline - loop.time(), self.config.request_timeout / 3)
                    if not idempotent:
                        attempt = deadline - loop.time()
                    return await getattr(self.stub(service), method)(
                        request, timeout=max(0.05, attempt), metadata=metadata,
                        wait_for_ready=True,
                    )  # fmt: skip
            except EtcdError as exc:  # mapped, or from authenticating
                error = exc
            if isinstance(error, AuthExpiredError) and not auth_retried:
                self.forget_token()
                auth_retried = True
                continue
            if not (isinstance(error, EtcdUnavailableError) and idempotent):
                raise error
            if loop.time() >= deadline:
                raise error
            if len(self._endpoints) > 1:  # try another member; alone, gRPC reconnects itself
                await self._rotate(channel)
            await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - loop.time())))

    async def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under `prefix`, paged at one fixed revision; returns (kvs, revision).

        Pages hold up to `page_size` keys; a page that would exceed the receive limit (large
        values) is asked again with half as many keys, down to one, and the page size grows
        back after each page that fits. One value never exceeds etcd's request limit (1.5 MiB
        by default), far below the receive limit, so every listing completes.
        """
        end, key, revision = prefix_range_end(prefix), prefix, 0
        limit = self.config.page_size
        out: list[KeyValue] = []
        while True:
            request = rpc_pb2.RangeRequest(key=key, range_end=end, limit=limit, revision=revision)
            try:
                response = await self.call("KV", "Range", request, idempotent=True)
            except EtcdTooLargeError:
                if limit == 1:
                    raise
                limit = max(1, limit // 2)
                log.info(
                    "etcd_range_page_shrunk", prefix=prefix.decode(errors="replace"), limit=limit
                )
                continue
            if revision == 0:
                revision = int(response.header.revision)
            out.extend(kv_from_pb(kv) for kv in response.kvs)
            if not response.more or not response.kvs:
                return out, revision
            key = bytes(response.kvs[-1].key) + b"\0"
            limit = min(self.config.page_size, limit * 2)

    async def get(self, key: bytes) -> KeyValue | None:
        """One key, or None."""
        response = await self.call("KV", "Range", rpc_pb2.RangeRequest(key=key), idempotent=True)
        return kv_from_pb(response.kvs[0]) if response.kvs else None

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Write a key (attached to `lease` when non-zero); returns the new revision."""
        request = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        response = await self.call("KV", "Put", request, idempotent=True)
        return int(response.header.revision)

    async def put_many(self, items: Sequence[tuple[bytes, bytes]], *, lease: int = 0) -> int:
        """Write several keys in one transaction (one revision); returns it."""
        ops = [
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v, lease=lease))
            for k, v in items
        ]
        request = rpc_pb2.TxnRequest(success=ops)
        response = await self.call("KV", "Txn", request, idempotent=False)
        return int(response.header.revision)

    async def put_if_absent(self, key: bytes, value: bytes, *, lease: int = 0) -> tuple[bool, int]:
        """Create `key` only if it does not exist (one transaction); returns (created, the
        revision the transaction saw). Never retried: after an unavailability the caller
        reads the key to learn whether it was created."""
        absent = rpc_pb2.Compare(
            key=key,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=0,
        )
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))
        request = rpc_pb2.TxnRequest(compare=[absent], success=[put])
        response = await self.call("KV", "Txn", request, idempotent=False)
        return bool(response.succeeded), int(response.header.revision)

    async def put_if_leased(self, key: bytes, value: bytes, *, lease: int) -> bool:
        """Overwrite `key` only while it exists attached to `lease` (one transaction); False
        when it was deleted or is held by another lease meanwhile. Retrying is safe: the
        same value under the same lease."""
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))
        return await self._if_leased(key, lease, put)

    async def delete_if_leased(self, key: bytes, *, lease: int) -> bool:
        """Delete `key` only while it is attached to `lease` (one transaction); False when it
        is gone or held by another lease. Retrying is safe: a retry finds it gone."""
        delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
        return await self._if_leased(key, lease, delete)

    async def _if_leased(self, key: bytes, lease: int, op: Any) -> bool:
        """Run `op` in a transaction that requires `key` to exist attached to `lease`."""
        exists = rpc_pb2.Compare(
            key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.GREATER,
            create_revision=0,
        )  # fmt: skip
        held = rpc_pb2.Compare(
            key=key, target=rpc_pb2.Compare.LEASE, result=rpc_pb2.Compare.EQUAL, lease=lease
        )
        request = rpc_pb2.TxnRequest(compare=[exists, held], success=[op])
        response = await self.call("KV", "Txn", request, idempotent=True)
        return bool(response.succeeded)

    async def put_if_revision(self, key: bytes, value: bytes, *, mod_revision: int) -> bool:
        """Write `key` only if it is still as it was read: last modified at `mod_revision`,
        or absent when `mod_revision` is 0 (one transaction, never retried: the caller reads
        again and decides). False when another writer came first."""
        unchanged = (
            rpc_pb2.Compare(
                key=key, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL,
                mod_revision=mod_revision,
            )
            if mod_revision
            else rpc_pb2.Compare(
                key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                create_revision=0,
            )
        )  # fmt: skip
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
        request = rpc_pb2.TxnRequest(compare=[unchanged], success=[put])
        response = await self.call("KV", "Txn", request, idempotent=False)
        return bool(response.succeeded)

    async def delete(self, key: bytes, *, prefix: bool = False) -> int:
        """Delete a key (or every key under a prefix); returns how many were deleted."""
        end = prefix_range_end(key) if prefix else b""
        request = rpc_pb2.DeleteRangeRequest(key=key, range_end=end)
        response = await self.call("KV", "DeleteRange", request, idempotent=True)
        return int(response.deleted)

    async def compact(self, revision: int) -> None:
        """Compact the key-value history up to `revision` (tests and operators)."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=True)
        await self.call("KV", "Compact", request, idempotent=True)

    async def lease_grant(self, ttl: int) -> int:
        """Grant a lease of `ttl` seconds; returns its id."""
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl)
        response = await self.call("Lease", "LeaseGrant", request, idempotent=False)
        if response.error:
            raise EtcdError(f"LeaseGrant: {response.error}")
        return int(response.ID)

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease, deleting every key attached to it."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        await self.call("Lease", "LeaseRevoke", request, idempotent=True)

    async def lease_time_to_live(self, lease_id: int) -> int:
        """Seconds left on a lease; -1 when it does not exist (expired or revoked)."""
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id)
        response = await self.call("Lease", "LeaseTimeToLive", request, idempotent=True)
        return int(response.TTL)
