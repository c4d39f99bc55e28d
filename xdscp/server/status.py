"""Per-stream status: what each connected node has been sent, accepted and rejected.

Sans I/O: the grpc.aio shell tells a `StreamRecord` of each push and each answer (the
stream state's `Answer` event: the version a NACK rejected and its error ride on it), with
the time (`on_push`, `on_answer`); what each type's client holds is read from the stream's
read-only `StreamView` when asked (`resources`), so a connected node costs a few fields
plus its NACK history (at most `NACK_HISTORY` entries, each error within `truncate`'s
limit), not a copy of what it holds. Per resource the client's status is one of
`ClientStatus` (as CSDS's `ClientResourceStatus`) and the server's view of it one of
`ConfigStatus` (as CSDS's).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xdscp.cache import Snapshot, TypeUrl, short_name
from xdscp.server.nodes import NodeInfo
from xdscp.server.rules import ACCEPTED, Answer, RequestKind
from xdscp.server.seams import StreamView, TypeView

ERROR_HEAD = 256
ERROR_TAIL = 768
NACK_HISTORY = 16  # NACKs a stream remembers, newest last


def truncate(text: str, head: int = ERROR_HEAD, tail: int = ERROR_TAIL) -> str:
    """NACK messages can hold a whole resource as text: keep logs and status readable.

    Envoy puts the reason at the end (after a dump of the rejected resource), so both the
    head and the tail are kept, joined by " … (N chars omitted) … ".
    """
    if len(text) <= head + tail:
        return text
    omitted = len(text) - head - tail
    return f"{text[:head]} … ({omitted} chars omitted) … {text[len(text) - tail :]}"


def iso(at: float) -> str:
    """A wall-clock time as the status JSON shows it (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class ClientStatus(StrEnum):
    """What the client holds of one resource (CSDS `ClientResourceStatus`)."""

    REQUESTED = "REQUESTED"  # subscribed, nothing of it accepted yet
    DOES_NOT_EXIST = "DOES_NOT_EXIST"  # subscribed, and the snapshot has no such name
    ACKED = "ACKED"
    NACKED = "NACKED"  # the latest version sent was rejected (`error` says why)


class ConfigStatus(StrEnum):
    """How what the client holds compares with what was sent (CSDS `ConfigStatus`)."""

    SYNCED = "SYNCED"  # the client accepted the latest version sent
    NOT_SENT = "NOT_SENT"
    STALE = "STALE"  # a newer version is on its way (not answered yet)
    ERROR = "ERROR"  # the newer version was NACKed


@dataclass(frozen=True, slots=True)
class Nack:
    """One rejected response: when, which type, its version and nonce, the client's error."""

    at: float
    type_url: str
    version: str
    nonce: str
    error: str  # truncated

    def as_json(self) -> dict[str, str]:
        """The JSON view (`/debug/nodes`, `xdscp nacks`)."""
        return {
            "at": iso(self.at), "type": short_name(self.type_url), "version": self.version,
            "nonce": self.nonce, "error": self.error,
        }  # fmt: skip


@dataclass(slots=True)
class Times:
    """When a type was last pushed, ACKed and NACKed (0: never)."""

    pushed: float = 0.0
    acked: float = 0.0
    nacked: float = 0.0


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """One subscribed resource as one stream's client holds it."""

    type_url: str
    name: str
    client_status: ClientStatus
    config_status: ConfigStatus
    version: str  # the version the client accepted ("" if none)
    sent_version: str  # a newer version sent (on its way, or NACKed); "" if none
    last_updated: float  # the type's latest ACK, push or NACK that set this status (0: never)
    resource: bytes | None  # the accepted resource as an Any, while the snapshot still has it
    error: Nack | None = None  # for NACKED: the type's latest NACK

    def as_json(self) -> dict[str, Any]:
        """The JSON view, without the resource."""
        out: dict[str, Any] = {
            "type": short_name(self.type_url), "name": self.name,
            "client_status": str(self.client_status), "config_status": str(self.config_status),
            "version": self.version, "sent_version": self.sent_version,
            "last_updated": iso(self.last_updated) if self.last_updated else None,
        }  # fmt: skip
        if self.error is not None:
            out["error"] = self.error.as_json()
        return out


@dataclass
class StreamRecord:
    """One open stream, its node, a read-only view of its state, and what happened when."""

    node: NodeInfo
    service: str
    view: StreamView
    group: str
    connected_at: float = field(default_factory=time.time)
    nacks: deque[Nack] = field(default_factory=lambda: deque(maxlen=NACK_HISTORY))
    times: dict[str, Times] = field(default_factory=dict)

    def on_push(self, type_url: str, now: float) -> None:
        """A response of `type_url` was sent at `now`."""
        self.times.setdefault(type_url, Times()).pushed = now

    def on_answer(self, answer: Answer, now: float) -> None:
        """The client answered a response at `now`: an ACK, or a NACK (kept in the history)."""
        if answer.kind in ACCEPTED:
            self.times.setdefault(answer.type_url, Times()).acked = now
        elif answer.kind is RequestKind.NACK:
            self.times.setdefault(answer.type_url, Times()).nacked = now
            error = truncate(answer.error)
            self.nacks.append(Nack(now, answer.type_url, answer.version, answer.nonce, error))

    def last_nacks(self) -> dict[str, dict[str, str]]:
        """The latest NACK of each type still in the history, by short type name."""
        last = {short_name(n.type_url): n for n in self.nacks}
        return {
            t: {"version": n.version, "error": n.error, "at": iso(n.at)} for t, n in last.items()
        }

    def resources(self) -> Iterator[ResourceStatus]:
        """Every resource the client is subscribed to, holds or was sent, type by type."""
        snapshot = self.view.snapshot
        for type_url, ts in self.view.types.items():
            if ts.subscribed:
                latest = next((n for n in reversed(self.nacks) if n.type_url == type_url), None)
                times = self.times.get(type_url, Times())
                yield from _type_statuses(type_url, ts, snapshot, times, latest)

    def as_json(self) -> dict[str, Any]:
        """The status endpoint's view of this stream."""
        types = {
            short_name(t): {
                "subscribed": "*" if ts.names is None else sorted(ts.names),
                "sent_version": ts.sent_version,
                "acked_version": ts.acked_version,
                "in_sync": bool(ts.sent_version) and ts.acked_version == ts.sent_version,
            }
            for t, ts in self.view.types.items()
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
            "last_nack": self.last_nacks(),
            "nacks": [n.as_json() for n in self.nacks],
        }


def _type_statuses(
    type_url: TypeUrl, ts: TypeView, snapshot: Snapshot | None, times: Times, nack: Nack | None
) -> Iterator[ResourceStatus]:
    """One type's resources: what the client holds or was sent, then the names it
    subscribed to and was sent nothing of (absent from the snapshot: DOES_NOT_EXIST)."""
    pool: Mapping[str, Any] = snapshot.resources[type_url] if snapshot is not None else {}
    names, seen = ts.names, set()
    for name, accepted, newer, rejected in sorted(ts.client_view(), key=lambda v: v[0]):
        if (names is not None and name not in names) or (accepted is None and newer is None):
            continue
        seen.add(name)
        held = pool.get(name)
        body = held.any_bytes if held is not None and held.version == accepted else None
        client = ClientStatus.ACKED if accepted is not None else ClientStatus.REQUESTED
        if newer == accepted or (newer is None and not rejected):
            config, updated = ConfigStatus.SYNCED, times.acked or times.pushed
        elif rejected:
            config, updated, client = ConfigStatus.ERROR, times.nacked, ClientStatus.NACKED
        else:
            config, updated = ConfigStatus.STALE, times.pushed
        sent = "" if newer == accepted else newer or ""
        error = nack if rejected else None
        yield ResourceStatus(
            type_url, name, client, config, accepted or "", sent, updated, body, error
        )
    for name in sorted((names or frozenset()) - seen):
        client = ClientStatus.DOES_NOT_EXIST
        if snapshot is None or name in pool:
            client = ClientStatus.REQUESTED
        yield ResourceStatus(
            type_url, name, client, ConfigStatus.NOT_SENT, "", "", times.pushed, None
        )


class StatusBoard:
    """Every open stream, by a stream id. `on_change` is called when one opens or closes."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.streams: dict[int, StreamRecord] = {}
        self._of_node: dict[str, set[int]] = {}  # node id -> its open streams' ids
        self._next = 0
        self._on_change = on_change

    def add(self, record: StreamRecord) -> int:
        """Register a stream; returns its id."""
        self._next += 1
        self.streams[self._next] = record
        self._of_node.setdefault(record.node.id, set()).add(self._next)
        if self._on_change is not None:
            self._on_change()
        return self._next

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream."""
        record = self.streams.pop(stream_id, None)
        if record is None:
            return
        ids = self._of_node.get(record.node.id, set())
        ids.discard(stream_id)
        if not ids:
            self._of_node.pop(record.node.id, None)
        if self._on_change is not None:
            self._on_change()

    def receives(self, node_id: str, cluster: str) -> bool:
        """Whether an open stream of node `node_id` subscribes to Cluster `cluster` (by
        name or by wildcard): what it may report load for."""
        for stream_id in self._of_node.get(node_id, ()):
            clusters = self.streams[stream_id].view.types.get(TypeUrl.CLUSTER)
            if clusters is None or not clusters.subscribed:
                continue
            if clusters.names is None or cluster in clusters.names:
                return True
        return False

    def by_node(self) -> dict[str, list[StreamRecord]]:
        """Open streams grouped by node id (a node may hold several), ordered by node id."""
        out: dict[str, list[StreamRecord]] = {}
        for record in sorted(self.streams.values(), key=lambda r: (r.node.id, r.connected_at)):
            out.setdefault(record.node.id, []).append(record)
        return out

    def nack_history(self, node_id: str | None = None) -> list[dict[str, str]]:
        """The NACKs of every stream (of one node's, given its id), oldest first."""
        records = [r for r in self.streams.values() if node_id in (None, r.node.id)]
        nacks = sorted(((r.node.id, n) for r in records for n in r.nacks), key=lambda p: p[1].at)
        return [{"node": node, **nack.as_json()} for node, nack in nacks]

    def as_json(self) -> list[dict[str, Any]]:
        """All streams, ordered by node id."""
        return sorted((r.as_json() for r in self.streams.values()), key=lambda r: r["node"])
