"""Per-stream status: what each connected node has been sent, accepted and rejected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xdscp.server.nodes import NodeInfo
from xdscp.server.seams import StreamProtocol

ERROR_HEAD = 256
ERROR_TAIL = 768


def truncate(text: str, head: int = ERROR_HEAD, tail: int = ERROR_TAIL) -> str:
    """NACK messages can hold a whole resource as text: keep logs and status readable.

    Envoy puts the reason at the end (after a dump of the rejected resource), so both the
    head and the tail are kept, joined by " … (N chars omitted) … ".
    """
    if len(text) <= head + tail:
        return text
    omitted = len(text) - head - tail
    return f"{text[:head]} … ({omitted} chars omitted) … {text[len(text) - tail :]}"


@dataclass
class StreamRecord:
    """One open stream, its node and protocol state."""

    node: NodeInfo
    service: str
    state: StreamProtocol[Any]
    group: str
    connected_at: float = field(default_factory=time.time)
    nacks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The status endpoint's view of this stream."""
        types = {
            str(t).rsplit(".", 1)[-1]: {
                "subscribed": "*" if ts.names is None else sorted(ts.names),
                "sent_version": ts.sent_version,
                "acked_version": ts.acked_version,
                "in_sync": bool(ts.sent_version) and ts.acked_version == ts.sent_version,
            }
            for t, ts in self.state.types.items()
            if ts.subscribed
        }
        return {
            "node": self.node.id,
            "cluster": self.node.cluster,
            "locality": dict(self.node.locality),
            "client": str(self.node.kind),
            "user_agent": f"{self.node.user_agent} {self.node.user_agent_version}".strip(),
            "group": self.group,
            "service": self.service,
            "connected_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.connected_at)),
            "types": types,
            "last_nack": self.nacks,
        }


class StatusBoard:
    """Every open stream, by a stream id. `on_change` is called when one opens or closes."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.streams: dict[int, StreamRecord] = {}
        self._next = 0
        self._on_change = on_change

    def add(self, record: StreamRecord) -> int:
        """Register a stream; returns its id."""
        self._next += 1
        self.streams[self._next] = record
        if self._on_change is not None:
            self._on_change()
        return self._next

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream."""
        if self.streams.pop(stream_id, None) is not None and self._on_change is not None:
            self._on_change()

    def as_json(self) -> list[dict[str, Any]]:
        """All streams, ordered by node id."""
        return sorted((r.as_json() for r in self.streams.values()), key=lambda r: r["node"])
