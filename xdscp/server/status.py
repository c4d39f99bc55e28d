"""Per-stream status: what each connected node has been sent, accepted and rejected.

Sans I/O, and built from events only: the record never holds the stream's protocol state.
The grpc.aio shell tells a `StreamRecord`, in the order they happen, of the snapshot the
stream is served from (`on_snapshot`), each request's `Answer` (its kind, the nonce it
answers, the version accepted or rejected, a NACK's error, the type's subscription after
it: `on_answer`), a delta stream's changed types (`on_held`: each a `DeltaHolding`) and each
response pushed (`on_push`: type, nonce, version), with the time.

Every event carries references to immutable objects the stream already made, never
copies, so a type costs O(1) fields whatever its client holds:

- state of the world (`SotwTrack`): the snapshot and subscription of the latest response
  (its content is what the snapshot has of those names), the same of the latest response
  the client ACKed, the nonce of the latest NACK, the subscription frozenset the protocol
  made (a request that keeps it keeps the same object);
- delta (`DeltaTrack`): the latest `DeltaHolding`: a copy of what the client held (tuples)
  and the batches of changes since, what each response awaiting an answer replaced, the
  names held back after a NACK, the versions; and the ACKs told since by their `Answer`
  alone (a plain ACK changes nothing else, so the stream tells no `DeltaHolding` for it).

The per-resource view (`resources`, for CSDS, `/debug/config_dump`) is computed only when
asked. A connected node costs those fields plus its NACK history (at most `NACK_HISTORY`
entries, each error within `truncate`'s limit). Per resource the client's status is one of
`ClientStatus` (as CSDS's `ClientResourceStatus`) and the server's view of it one of
`ConfigStatus` (as CSDS's).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xdscp.cache import Snapshot, TypeUrl, short_name
from xdscp.model import ClientKind
from xdscp.server.nodes import NodeInfo
from xdscp.server.rules import ACCEPTED, Answer, RequestKind
from xdscp.server.seams import ServedResponse
from xdscp.server.tracks import DeltaHolding, DeltaTrack, SotwTrack, Times, Track

__all__ = [
    "ERROR_HEAD",
    "ERROR_TAIL",
    "NACK_HISTORY",
    "ClientStatus",
    "ConfigStatus",
    "DeltaTrack",
    "Nack",
    "ResourceStatus",
    "SotwTrack",
    "StatusBoard",
    "StreamRecord",
    "Times",
    "iso",
    "truncate",
]

# members by module name: an enum member read through its class costs a Python call (3.11)
_ACK, _NACK, _UNKNOWN_TYPE = RequestKind.ACK, RequestKind.NACK, RequestKind.UNKNOWN_TYPE

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
    """One open stream, its node, and what its events told (see the module's docstring).

    `delta` says which variant's events it takes; `snapshot` is the one the stream is
    served from (told by `on_snapshot`); `types` each subscribed type, in request order.
    """

    node: NodeInfo
    service: str
    group: str
    snapshot: Snapshot | None = None
    delta: bool = False
    connected_at: float = field(default_factory=time.time)
    nacks: deque[Nack] = field(default_factory=lambda: deque(maxlen=NACK_HISTORY))
    types: dict[str, Track] = field(default_factory=dict)

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """The stream is served from `snapshot` now (told before the responses it calls for)."""
        self.snapshot = snapshot

    def on_answer(self, answer: Answer, now: float) -> None:
        """A request's `Answer` at `now`: the subscription it leaves, an ACK, or a NACK
        (kept in the history). Told before the responses the request calls for."""
        kind = answer.kind
        if kind is _UNKNOWN_TYPE:
            return
        track = self.types.get(answer.type_url)
        if not self.delta:
            if track is None:
                # a served type's answer names it as a TypeUrl already (str keys work alike)
                type_url: Any = answer.type_url
                track = self.types[type_url] = SotwTrack(type_url=type_url)
            assert isinstance(track, SotwTrack)  # noqa: S101 - a state-of-the-world record
            if answer.subscribed is not track.names:  # the protocol keeps an unchanged one
                track.subscribe(answer.subscribed)
            if kind in ACCEPTED:
                track.accept(answer.version, now)
            elif kind is _NACK:
                track.nacked, track.nacked_nonce = now, answer.nonce
        elif isinstance(track, DeltaTrack):  # None: a type never told (`on_held`)
            if kind in ACCEPTED:
                track.acked = now
                if kind is _ACK:  # told by this answer alone (no `on_held` follows)
                    track.answered += (answer.nonce,)
                    track.acked_version = answer.version
            elif kind is _NACK:
                track.nacked = now
        if kind is _NACK:
            error = truncate(answer.error)
            self.nacks.append(Nack(now, answer.type_url, answer.version, answer.nonce, error))

    def on_held(self, holdings: Iterable[object]) -> None:
        """A delta stream's changed types (`DeltaStreamState.events`: `DeltaHolding`s)."""
        types = self.types
        for holding in holdings:
            if isinstance(holding, DeltaHolding):
                track = types.get(holding.type_url)
                if not isinstance(track, DeltaTrack):  # None: the type's first
                    track = types[holding.type_url] = DeltaTrack()
                track.holding, track.acked_version, track.answered = (
                    holding,
                    holding.acked_version,
                    (),
                )

    def on_push(self, response: ServedResponse, now: float) -> None:
        """`response` was sent at `now` (a type not subscribed: an unserved type's answer)."""
        track = self.types.get(response.type_url)
        if isinstance(track, SotwTrack):
            track.push(response.nonce, response.version, self.snapshot, now)
        elif track is not None:
            track.pushed = now

    def last_nacks(self) -> dict[str, dict[str, str]]:
        """The latest NACK of each type still in the history, by short type name."""
        last = {short_name(n.type_url): n for n in self.nacks}
        return {
            t: {"version": n.version, "error": n.error, "at": iso(n.at)} for t, n in last.items()
        }

    def resources(self) -> Iterator[ResourceStatus]:
        """Every resource the client is subscribed to, holds or was sent, type by type."""
        for type_url, track in self.types.items():
            latest = next((n for n in reversed(self.nacks) if n.type_url == type_url), None)
            yield from _type_statuses(TypeUrl(type_url), track, self.snapshot, latest)

    def as_json(self) -> dict[str, Any]:
        """The status endpoint's view of this stream."""
        types = {
            short_name(t): {
                "subscribed": "*" if track.names is None else sorted(track.names),
                "sent_version": track.sent_version,
                "acked_version": track.acked_version,
                "in_sync": bool(track.sent_version) and track.acked_version == track.sent_version,
            }
            for t, track in self.types.items()
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
    type_url: TypeUrl, track: Track, snapshot: Snapshot | None, nack: Nack | None
) -> Iterator[ResourceStatus]:
    """One type's resources: what the client holds or was sent, then the names it
    subscribed to and was sent nothing of (absent from the snapshot: DOES_NOT_EXIST)."""
    pool: Mapping[str, Any] = snapshot.resources[type_url] if snapshot is not None else {}
    names, seen = track.names, set()
    for name, accepted, newer, rejected in sorted(track.client_view(), key=lambda v: v[0]):
        if (names is not None and name not in names) or (accepted is None and newer is None):
            continue
        seen.add(name)
        held = pool.get(name)
        body = held.any_bytes if held is not None and held.version == accepted else None
        client = ClientStatus.ACKED if accepted is not None else ClientStatus.REQUESTED
        if newer == accepted or (newer is None and not rejected):
            config, updated = ConfigStatus.SYNCED, track.acked or track.pushed
        elif rejected:
            config, updated, client = ConfigStatus.ERROR, track.nacked, ClientStatus.NACKED
        else:
            config, updated = ConfigStatus.STALE, track.pushed
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
            type_url, name, client, ConfigStatus.NOT_SENT, "", "", track.pushed, None
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

    def kind_of(self, node_id: str) -> ClientKind | None:
        """The kind of client node `node_id` is (from its open streams' node), or None when
        it has no open stream."""
        for stream_id in self._of_node.get(node_id, ()):
            return self.streams[stream_id].node.kind
        return None

    def receives(self, node_id: str, cluster: str) -> bool:
        """Whether an open stream of node `node_id` subscribes to Cluster `cluster` (by
        name or by wildcard): what it may report load for."""
        for stream_id in self._of_node.get(node_id, ()):
            clusters = self.streams[stream_id].types.get(TypeUrl.CLUSTER)
            if clusters is None:
                continue  # never asked for Clusters
            names = clusters.names
            if names is None or cluster in names:
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
