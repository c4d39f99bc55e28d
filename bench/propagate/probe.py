"""In-process timing of xdscp: when a change is published, built, written and ACKed.

Every time is taken where xdscp itself acts, without polling: `TimedSource` notes when the
etcd source publishes (through the `Publish` callback every source is given); a cache watcher
(the hook the streams use) notes when the snapshot holding the change is set; the server's
stream observers (`XdsService.observers`) note when the stream writes the CLA response and
when it has recorded Envoy's ACK of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xdscp.cache import Snapshot, TypeUrl
from xdscp.model import ServiceSet
from xdscp.plane import ControlPlane
from xdscp.server import StreamEvent, StreamEventKind
from xdscp.server.metrics import short_type
from xdscp.sources.base import Publish, Source

CLA = "ClusterLoadAssignment"


def port_marker(port: int) -> bytes:
    """`SocketAddress.port_value = port` as protobuf writes it (field 3, varint)."""
    out = bytearray(b"\x18")
    while True:
        byte, port = port & 0x7F, port >> 7
        out.append(byte | (0x80 if port else 0))
        if not port:
            return bytes(out)


class TimedSource:
    """A `Source` that tells `note` when the wrapped source publishes (the seam's own
    callback, `xdscp.sources.base.Publish`): splits the source's part from the rest."""

    def __init__(self, inner: Source, note: Callable[[ServiceSet], None]) -> None:
        self.inner, self.note = inner, note

    @property
    def name(self) -> str:
        """The wrapped source's name."""
        return self.inner.name

    @property
    def ready(self) -> bool:
        """The wrapped source's readiness."""
        return self.inner.ready

    @property
    def last_error(self) -> str | None:
        """The wrapped source's last error."""
        return self.inner.last_error

    async def run(self, publish: Publish) -> None:
        """Run the wrapped source, noting each publish before passing it on."""

        def timed(services: ServiceSet) -> None:
            self.note(services)
            publish(services)

        await self.inner.run(timed)


@dataclass
class Probe:
    """Snapshot and ACK times of the change being waited for, keyed by change number."""

    service: str
    plane: ControlPlane | None = None  # set by `install`
    change: int = -1
    marker: bytes = b""
    old_marker: bytes = b""
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    port: int = 0
    t_publish: dict[int, float] = field(default_factory=dict)
    t_snapshot: dict[int, float] = field(default_factory=dict)
    t_push: dict[int, float] = field(default_factory=dict)
    t_ack: dict[int, float] = field(default_factory=dict)
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    def install(self, plane: ControlPlane) -> None:
        """Watch `plane`'s cache (before `plane.start()`); its streams are observed by
        `on_event`, given to `build_plane` as an observer."""
        self.plane = plane
        plane.cache.watch("envoy", self.on_snapshot)

    def on_event(self, event: StreamEvent) -> None:
        """A stream pushed a response or recorded the client's answer (`XdsService.observers`)."""
        label = short_type(event.type_url)
        if event.kind is StreamEventKind.PUSH:
            self.on_push(label)
        elif event.kind is StreamEventKind.ACK:
            self.on_ack(label)

    def expect(self, change: int, port: int, old_port: int | None) -> None:
        """The next change moves `service` to `port` (from `old_port`)."""
        self.change, self.port, self.marker = change, port, port_marker(port)
        self.old_marker = port_marker(old_port) if old_port is not None else b""
        self.acked.clear()

    def on_publish(self, services: ServiceSet) -> None:
        """The source published: note the first set holding only the expected endpoint."""
        service = services.get(self.service)
        if service is None or self.change in self.t_publish:
            return
        if [e.port for e in service.endpoints] == [self.port]:
            self.t_publish[self.change] = time.monotonic()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Cache watcher: note the first snapshot that holds the expected endpoint."""
        if self.change in self.t_snapshot:
            return
        resource = snapshot.resources[TypeUrl.ENDPOINT].get(self.service)
        if resource is None or self.marker not in resource.any_bytes:
            return
        if self.old_marker and self.old_marker in resource.any_bytes:
            return
        self.t_snapshot[self.change] = time.monotonic()
        self.snapshots[self.change] = snapshot

    def on_push(self, label: str) -> None:
        """A response is about to be written: the first CLA after the snapshot is the push."""
        if label == CLA and self.change in self.t_snapshot and self.change not in self.t_push:
            self.t_push[self.change] = time.monotonic()

    def on_ack(self, label: str) -> None:
        """An ACK was recorded: is some stream now in sync on the expected snapshot?"""
        now = time.monotonic()
        snapshot = self.snapshots.get(self.change)
        if label != CLA or snapshot is None or self.change in self.t_ack or self.plane is None:
            return
        for record in self.plane.status.streams.values():
            state = record.types.get(TypeUrl.ENDPOINT)
            if (
                record.snapshot is snapshot
                and state is not None
                and state.acked_version == state.sent_version
            ):
                self.t_ack[self.change] = now
                self.acked.set()
                return

    async def wait_ack(self, change: int, limit_s: float) -> float:
        """The ACK time of `change` (waiting up to `limit_s`)."""
        async with asyncio.timeout(limit_s):
            while change not in self.t_ack:
                self.acked.clear()
                await self.acked.wait()
        return self.t_ack[change]
