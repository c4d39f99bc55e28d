"""Why an xDS stream ended: one reason per close, logged (`stream_closed`) and counted
(`xdscp_streams_closed_total{reason}`), with the gRPC status the stream ended with.

grpc.aio tells a server only that a call was cancelled, not why: a client's cancel (RST_STREAM),
its connection closing (GOAWAY, reset, a keepalive timeout on either side) and a server's own
GOAWAY all arrive as one cancellation, so they share the reason `cancelled`. Streams over
grpc's concurrent-stream limit are refused by the transport before xdscp sees them: they
are never opened, so never closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

import grpc

from xdscp.errors import (
    InvalidRequestError,
    SlowClientError,
    StreamAbortError,
    UndecodableRequestError,
)


class CloseReason(StrEnum):
    """Why a stream ended (the `reason` of its `stream_closed` log line and counter)."""

    CLIENT_CLOSED = "client_closed"  # the client ended its requests (half-close): status OK
    CANCELLED = "cancelled"  # the client cancelled, or its connection closed
    SERVER_SHUTDOWN = "server_shutdown"  # xdscp is stopping
    SLOW_CLIENT = "slow_client"  # the client read nothing for the write timeout
    UNDECODABLE_REQUEST = "undecodable_request"
    INVALID_REQUEST = "invalid_request"  # e.g. no type URL on ADS
    ERROR = "error"  # a bug in xdscp (logged with its traceback)

    @property
    def is_error(self) -> bool:
        """True for the reasons that end a stream with an error status xdscp chose."""
        return self not in _ORDINARY


_ORDINARY = frozenset(
    {CloseReason.CLIENT_CLOSED, CloseReason.CANCELLED, CloseReason.SERVER_SHUTDOWN}
)

# error → (the status the stream ends with, the reason)
ABORTS: dict[type[StreamAbortError], tuple[grpc.StatusCode, CloseReason]] = {
    UndecodableRequestError: (grpc.StatusCode.INVALID_ARGUMENT, CloseReason.UNDECODABLE_REQUEST),
    InvalidRequestError: (grpc.StatusCode.INVALID_ARGUMENT, CloseReason.INVALID_REQUEST),
    SlowClientError: (grpc.StatusCode.RESOURCE_EXHAUSTED, CloseReason.SLOW_CLIENT),
}


@dataclass(frozen=True, slots=True)
class Close:
    """How one stream ended: the reason, the gRPC status code and its details."""

    reason: CloseReason
    code: grpc.StatusCode
    details: str = ""


def close_of(error: BaseException | None, *, stopping: bool) -> Close:
    """The close of a stream that ended with `error` (None: its requests ended) while the
    server was (`stopping`) or was not shutting down."""
    if error is None:
        return Close(CloseReason.CLIENT_CLOSED, grpc.StatusCode.OK)
    if isinstance(error, StreamAbortError):
        code, reason = ABORTS[type(error)]
        return Close(reason, code, str(error))
    if isinstance(error, asyncio.CancelledError):
        reason = CloseReason.SERVER_SHUTDOWN if stopping else CloseReason.CANCELLED
        return Close(reason, grpc.StatusCode.CANCELLED)
    return Close(CloseReason.ERROR, grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")
