"""What the grpc.aio shell (`service.py`) needs of the parts it drives, as `typing.Protocol`s.

- `StreamProtocol`: one stream's sans-I/O state, either variant (`StreamState` for state
  of the world, `DeltaStreamState` for delta): `decode` a wire request into its plain
  request, `on_request` (an `Outcome`: the responses and what the request meant, `Kind`)
  / `on_snapshot` for the responses to send;
- `ServedResponse`: a response the shell writes (and encodes once for every stream);
- `SnapshotSource`: the cache the streams are served from (`xdscp.cache.SnapshotCache`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from xdscp.cache import Snapshot, TypeUrl, Watcher
from xdscp.server.rules import Outcome

Q = TypeVar("Q")


class SnapshotSource(Protocol):
    """The snapshots of each node group, and word of each new one."""

    def get(self, group: str) -> Snapshot | None:
        """The group's snapshot, None before the first one."""
        ...

    def watch(self, group: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with every new snapshot served to `group`; returns the way to stop."""
        ...


class ServedResponse(Protocol):
    """A response to write: what the shell counts, and its bytes."""

    @property
    def type_url(self) -> str:
        """The type it carries (a TypeUrl, or the unserved type a request named)."""
        ...

    @property
    def nonce(self) -> str:
        """Its nonce (what an ACK or NACK of it names)."""
        ...

    def cache_key(self) -> tuple[Any, ...]:
        """Equal keys mean equal bytes (names and versions of every resource)."""
        ...

    def encode(self, control_plane: bytes) -> bytes:
        """The serialized response, around the shared bytes of its resources."""
        ...


class TypeView(Protocol):
    """One type's subscription and versions, as status and metrics read them."""

    @property
    def names(self) -> frozenset[str] | None:
        """Subscribed names; None for a wildcard."""
        ...

    @property
    def subscribed(self) -> bool:
        """True once the client asked for the type."""
        ...

    @property
    def sent_version(self) -> str:
        """The version of the latest response."""
        ...

    @property
    def acked_version(self) -> str:
        """The version the client accepted."""
        ...

    @property
    def nacked_version(self) -> str:
        """The version the client rejected."""
        ...

    def client_view(self) -> Iterator[tuple[str, str | None, str | None, bool]]:
        """Per name the client holds or was sent: (name, the version it accepted (None:
        none), a newer version sent to it (None: none), True when it NACKed that one)."""
        ...


class StreamProtocol(Protocol[Q]):
    """One stream's protocol state, either variant; `Q` is its plain request."""

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot the stream is served from."""
        ...

    @property
    def types(self) -> Mapping[TypeUrl, TypeView]:
        """Each type's state."""
        ...

    def state(self, type_url: TypeUrl) -> TypeView:
        """One type's state (created on first use)."""
        ...

    def decode(self, message: Any) -> Q:
        """The protocol's view of a request off the wire."""
        ...

    def on_request(self, request: Q) -> Outcome[ServedResponse]:
        """Handle one request; the responses it calls for."""
        ...

    def on_snapshot(self, snapshot: Snapshot) -> Sequence[ServedResponse]:
        """A new snapshot: the responses it calls for."""
        ...
