"""How a stream ended → its close reason, status and log level."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from xdscp.errors import InvalidRequestError, SlowClientError, UndecodableRequestError
from xdscp.server.closing import CloseReason, close_of


@pytest.mark.parametrize(
    ("error", "stopping", "reason", "code"),
    [
        (None, False, CloseReason.CLIENT_CLOSED, grpc.StatusCode.OK),
        (asyncio.CancelledError(), False, CloseReason.CANCELLED, grpc.StatusCode.CANCELLED),
        (asyncio.CancelledError(), True, CloseReason.SERVER_SHUTDOWN, grpc.StatusCode.CANCELLED),
        (SlowClientError("w"), False, CloseReason.SLOW_CLIENT, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (SlowClientError("w"), True, CloseReason.SLOW_CLIENT, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (UndecodableRequestError("u"), False, CloseReason.UNDECODABLE_REQUEST,
         grpc.StatusCode.INVALID_ARGUMENT),
        (InvalidRequestError("i"), False, CloseReason.INVALID_REQUEST,
         grpc.StatusCode.INVALID_ARGUMENT),
        (KeyError("bug"), False, CloseReason.ERROR, grpc.StatusCode.UNKNOWN),
    ],
)  # fmt: skip
def test_every_ending_has_one_reason_and_status(
    error: BaseException | None, stopping: bool, reason: CloseReason, code: grpc.StatusCode
) -> None:
    """A cancellation is `server_shutdown` only while xdscp stops; an error keeps its reason
    even then; an abort's message is the details."""
    close = close_of(error, stopping=stopping)
    assert (close.reason, close.code) == (reason, code)
    if error is not None and not isinstance(error, asyncio.CancelledError):
        assert str(error) in close.details


def test_only_errors_xdscp_chose_are_warnings() -> None:
    """Ordinary ends (the client's, shutdown) are not errors; the rest are."""
    ordinary = {CloseReason.CLIENT_CLOSED, CloseReason.CANCELLED, CloseReason.SERVER_SHUTDOWN}
    assert {reason for reason in CloseReason if not reason.is_error} == ordinary
