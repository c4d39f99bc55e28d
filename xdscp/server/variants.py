"""The two stream variants, state of the world and delta: each stream picks one when it opens.

A `Variant` is how the grpc.aio shell (`service.py`) makes the variant's state (a
`seams.StreamProtocol` over its request and response types) and decodes its requests
(`wire.py`); the label tells the two apart in logs and status (` (delta)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from xdscp.cache import Snapshot, TypeUrl
from xdscp.server.delta import DeltaStreamState
from xdscp.server.messages import DeltaRequest, DeltaResponse, Request, Response
from xdscp.server.protocol import StreamState
from xdscp.server.seams import StreamProtocol
from xdscp.server.wire import decode_delta_request, decode_request

Q = TypeVar("Q")
R = TypeVar("R", Response, DeltaResponse)


@dataclass(frozen=True, slots=True)
class Variant(Generic[Q, R]):
    """A stream variant, chosen once per stream: its state, how its requests are decoded,
    and the label its service gets (` (delta)`)."""

    new: Callable[[frozenset[TypeUrl], Snapshot | None], StreamProtocol[Q, R]]
    decode: Callable[[Any], Q]
    label: str


SOTW: Variant[Request, Response] = Variant(
    lambda allowed, snapshot: StreamState(allowed=allowed, snapshot=snapshot), decode_request, ""
)
DELTA: Variant[DeltaRequest, DeltaResponse] = Variant(
    lambda allowed, snapshot: DeltaStreamState(allowed=allowed, snapshot=snapshot),
    decode_delta_request,
    " (delta)",
)
