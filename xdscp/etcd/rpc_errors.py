"""etcd's gRPC errors mapped into the xdscp hierarchy, at the client's boundary."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc

from xdscp.errors import (
    EtcdAuthError,
    EtcdCompactedError,
    EtcdError,
    EtcdTooLargeError,
    EtcdUnavailableError,
)

_UNAVAILABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


class AuthExpiredError(EtcdError):
    """etcd rejected the auth token (expired, or etcd restarted); authenticate again."""


class LeaseExpiredError(EtcdError):
    """The lease is gone (expired or revoked): its keys have been deleted by etcd."""


def _error_class(code: grpc.StatusCode, details: str) -> type[EtcdError]:
    if code is grpc.StatusCode.NOT_FOUND and "lease not found" in details:
        return LeaseExpiredError  # a write or keep-alive naming a lease that is gone
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return EtcdTooLargeError  # our own receive limit, not etcd's "too many requests"
    if code in _UNAVAILABLE or code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return EtcdUnavailableError
    if code is grpc.StatusCode.UNAUTHENTICATED or "auth token" in details:
        return AuthExpiredError
    if code is grpc.StatusCode.PERMISSION_DENIED or "authentication failed" in details:
        return EtcdAuthError
    return EtcdError


def map_rpc_error(method: str, error: grpc.aio.AioRpcError) -> EtcdError:
    """Map a gRPC error from etcd into the xdscp hierarchy."""
    code, details = error.code(), error.details() or ""
    if "compacted" in details and code not in _UNAVAILABLE:
        return EtcdCompactedError(0)
    return _error_class(code, details)(f"{method}: {code.name}: {details}")


def closed_under_us(method: str) -> EtcdUnavailableError:
    """Map a `CancelledError` raised by a pending call into `EtcdUnavailableError` when it
    was not this task that was cancelled — grpc.aio cancels the calls of a channel another
    task closed (failing over to the next member) — and re-raise it otherwise."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise asyncio.CancelledError
    return EtcdUnavailableError(f"{method}: the channel was closed (failover)")


@contextlib.contextmanager
def etcd_errors(method: str) -> Iterator[None]:
    """Map what a call to etcd raises into the xdscp hierarchy: an RPC error
    (`map_rpc_error`), a channel another task closed (failover) or a cancellation that was
    not this task's (`closed_under_us`) become `EtcdError`s; anything else passes."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise map_rpc_error(method, exc) from None
    except grpc.aio.UsageError:
        raise EtcdUnavailableError(f"{method}: channel closed by failover") from None
    except asyncio.CancelledError:
        raise closed_under_us(method) from None  # re-raised when it is ours
