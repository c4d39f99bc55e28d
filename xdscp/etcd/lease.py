"""Lease keep-alive: one stream per lease, refreshed at a third of its TTL."""

from __future__ import annotations

import asyncio

import grpc
import structlog

from xdscp.errors import EtcdError, EtcdUnavailableError
from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.etcd.client import EtcdClient
from xdscp.etcd.rpc_errors import AuthExpiredError, LeaseExpiredError, etcd_errors
from xdscp.retry import Backoff

log = structlog.get_logger("xdscp.etcd")


async def _keep_alive_once(
    client: EtcdClient, lease_id: int, interval: float, backoff: Backoff
) -> None:
    """Run one keep-alive stream until it breaks; raise LeaseExpiredError if the lease is gone."""
    await client.connected()
    metadata = await client.metadata()
    call = client.stub("Lease").LeaseKeepAlive(metadata=metadata, wait_for_ready=True)
    try:
        with etcd_errors("LeaseKeepAlive"):
            while True:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the read completes, and the keep-alive would never stop.
                async with asyncio.timeout(client.config.request_timeout):
                    response = await call.read()
                if response is grpc.aio.EOF:
                    raise EtcdUnavailableError("keep-alive stream closed by etcd")
                if response.TTL <= 0:
                    raise LeaseExpiredError(f"lease {lease_id:x} expired")
                backoff.reset()
                await asyncio.sleep(interval)
    except asyncio.InvalidStateError:
        # The stream ended (etcd restarted, a connection reset) while we slept: grpc.aio refuses
        # the next write with "RPC already finished". That calls for a reconnect, not an end.
        raise EtcdUnavailableError("LeaseKeepAlive: stream ended") from None
    except TimeoutError:
        raise EtcdUnavailableError("keep-alive response timed out") from None
    finally:
        call.cancel()


async def keep_alive(client: EtcdClient, lease_id: int, ttl: int) -> None:
    """Keep `lease_id` alive until cancelled, reconnecting as needed.

    Raises LeaseExpiredError when etcd says the lease no longer exists (the registration it
    carried is gone; the caller decides whether to register again). Every other etcd failure
    (a restart, a leader change, a reset connection) is retried with bounded backoff.
    """
    interval = max(0.2, ttl / 3)
    backoff = Backoff(0.05, min(client.config.max_backoff, interval))
    while True:
        try:
            await _keep_alive_once(client, lease_id, interval, backoff)
        except LeaseExpiredError:
            raise
        except EtcdError as exc:
            if isinstance(exc, AuthExpiredError):
                client.forget_token()
            log.warning("etcd_keepalive_failed", lease=f"{lease_id:x}", error=str(exc))
            await asyncio.sleep(backoff.next_delay())
