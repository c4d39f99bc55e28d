"""What the grpc.aio shell (`service.py`) needs of the parts it drives, as `typing.Protocol`s.

- `StreamProtocol[Q, R]`: one stream's sans-I/O state, either variant (`StreamState` over
  `Request`/`Response` for state of the world, `DeltaStreamState` over
  `DeltaRequest`/`DeltaResponse` for delta): `on_request` (a `Handled`: the responses and
  the request's `Answer` event) / `on_snapshot` for the responses to send, `events` for
  what else the status board is told (it never reads the state); `wire.py` decodes its
  requests and encodes its responses;
- `ServedResponse`: a response the shell writes (and encodes once for every stream);
- `SnapshotFeed`: the cache the streams are served from (`xdscp.cache.SnapshotCache`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from xdscp.cache import Snapshot, Watcher
from xdscp.server.rules import Handled


class SnapshotFeed(Protocol):
    """The snapshots of each node group, and word of each new one."""

    def get(self, group: str) -> Snapshot | None:
        """The group's snapshot, None before the first one."""
        ...

    def watch(self, group: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with every new snapshot served to `group`; returns the way to stop."""
        ...


class ServedResponse(Protocol):
    """A response to write: what the shell counts and tells, and its cache key."""

    @property
    def type_url(self) -> str:
        """The type it carries (a TypeUrl, or the unserved type a request named)."""
        ...

    @property
    def nonce(self) -> str:
        """Its nonce (what an ACK or NACK of it names)."""
        ...

    @property
    def version(self) -> str:
        """The version it carries."""
        ...

    def cache_key(self) -> tuple[Any, ...]:
        """Equal keys mean equal bytes (names and versions of every resource)."""
        ...


Q_contra = TypeVar("Q_contra", contravariant=True)
R_co = TypeVar("R_co", bound=ServedResponse, covariant=True)


class StreamProtocol(Protocol[Q_contra, R_co]):
    """One stream's protocol state, either variant: it takes plain requests `Q_contra` and
    emits responses `R_co` (`wire.py` decodes and encodes them), and events: each
    request's `Answer`, and what else the status board is told (`events`)."""

    def on_request(self, request: Q_contra) -> Handled[R_co]:
        """Handle one request: its `Answer` and the responses it calls for."""
        ...

    def on_snapshot(self, snapshot: Snapshot) -> Sequence[R_co]:
        """A new snapshot: the responses it calls for."""
        ...

    def events(self) -> Sequence[object]:
        """What the status board is told besides the answers and responses, since the
        last call (a delta stream's changed types; nothing for state of the world)."""
        ...
