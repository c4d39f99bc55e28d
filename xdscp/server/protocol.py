"""The state-of-the-world xDS conversation of one stream, as synchronous, I/O-free code.

`StreamState` is driven by two events — a request arrived, the snapshot changed — and
returns the responses to send. It never awaits and never touches a socket, so every rule
below is tested with plain function calls:

- a request whose `response_nonce` is not the latest sent for its type is stale: ignored;
- an ACK records the accepted version; a NACK records the rejected one, which is never sent
  again (a newer snapshot is sent normally);
- every CDS push is followed by that stream's ClusterLoadAssignments, even unchanged ones,
  and the next EDS request that looks like an ACK is answered too (Envoy re-sends its EDS
  request after a cluster changes and waits for an answer while the cluster warms);
- EDS is never held back for the CDS ACK, and only carries clusters the stream was given;
- a snapshot derived from the one the stream holds (`Snapshot.updated`) is handled from its
  list of changed names: Listener and Cluster responses carry every resource (the protocol
  reads a missing one as removed), ClusterLoadAssignment and RouteConfiguration responses
  carry only the changed ones (the protocol allows it), and versions are updated one entry
  at a time — a change costs the same whether the stream holds a hundred clusters or ten
  thousand.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from xdscp.resources import (
    TYPE_ORDER,
    Resource,
    Snapshot,
    TypeUrl,
    combined_digest,
    set_version,
)

WILDCARD = "*"
# Types whose every response must list all the stream's resources (state of the world).
FULL_STATE = frozenset({TypeUrl.CLUSTER, TypeUrl.LISTENER})


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a DiscoveryRequest the protocol needs."""

    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A DiscoveryResponse to send: its resources are shared, already serialized."""

    type_url: TypeUrl
    version_info: str
    nonce: str
    resources: tuple[Resource, ...]


@dataclass(slots=True)
class TypeState:
    """What one stream has asked for and been sent, for one resource type."""

    names: frozenset[str] | None = None  # None: wildcard
    subscribed: bool = False
    sent_nonce: str = ""
    sent_version: str = ""
    sent_names: set[str] = field(default_factory=set)
    sent_digest: int = 0  # XOR of the entry digests of `sent_names` (the sent version)
    acked_version: str = ""
    nacked_version: str = ""
    last_error: str = ""
    answer_next_ack: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one event produced: responses, and what the request meant."""

    responses: tuple[Response, ...] = ()
    kind: str = "none"  # initial | ack | nack | stale | resubscribe | none
    error: str = ""


@dataclass
class StreamState:
    """One xDS stream's protocol state. `allowed` limits the types (standalone services)."""

    allowed: frozenset[TypeUrl] = frozenset(TypeUrl)
    snapshot: Snapshot | None = None
    types: dict[TypeUrl, TypeState] = field(default_factory=dict)
    _nonce: int = 0

    def state(self, type_url: TypeUrl) -> TypeState:
        """The per-type state (created on first use)."""
        return self.types.setdefault(type_url, TypeState())

    def _next_nonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)

    def on_request(self, request: Request) -> Outcome:
        """Handle one DiscoveryRequest; return the responses it calls for."""
        type_url = served_type(request.type_url, self.allowed)
        if type_url is None:
            return Outcome(kind="unknown_type")
        ts = self.state(type_url)
        if request.response_nonce and request.response_nonce != ts.sent_nonce:
            return Outcome(kind="stale")
        names = _names(request.resource_names)
        if not request.response_nonce:
            ts.subscribed, ts.names = True, names
            return Outcome(self._respond([type_url], force=True), kind="initial")
        if request.error_message is not None:
            return self._nack(ts, request)
        ts.acked_version = request.version_info
        changed, ts.names = names != ts.names, names
        if changed or ts.answer_next_ack:
            ts.answer_next_ack = False
            return Outcome(
                self._respond([type_url], force=True), kind="resubscribe" if changed else "ack"
            )
        return Outcome(kind="ack")

    def _nack(self, ts: TypeState, request: Request) -> Outcome:
        ts.nacked_version = ts.sent_version
        ts.last_error = request.error_message or ""
        ts.names = _names(request.resource_names)
        return Outcome(kind="nack", error=ts.last_error)

    def on_snapshot(self, snapshot: Snapshot) -> tuple[Response, ...]:
        """A new snapshot: send each subscribed type whose content for this stream changed."""
        held, self.snapshot = self.snapshot, snapshot
        derived = derived_from(snapshot, held)
        return self._respond(list(TypeUrl), force=False, held=held if derived else None)

    def _respond(
        self, type_urls: Sequence[TypeUrl], *, force: bool, held: Snapshot | None = None
    ) -> tuple[Response, ...]:
        if self.snapshot is None:
            return ()
        out: list[Response] = []
        cds_sent = False
        for type_url in sorted(type_urls, key=TYPE_ORDER.__getitem__):
            ts = self.types.get(type_url)
            if ts is None or not ts.subscribed:
                continue
            must = force or (type_url is TypeUrl.ENDPOINT and cds_sent)
            changes = self.snapshot.changes
            if must or held is None or changes is None:
                response = self._build(type_url, ts, must=must)
            else:
                response = self._build_changes(type_url, ts, held, changes[type_url])
            if response is not None:
                out.append(response)
                cds_sent = cds_sent or type_url is TypeUrl.CLUSTER
        if cds_sent and TypeUrl.ENDPOINT not in type_urls:
            eds = self.types.get(TypeUrl.ENDPOINT)
            if eds is not None and eds.subscribed:
                response = self._build(TypeUrl.ENDPOINT, eds, must=True)
                if response is not None:
                    out.append(response)
        return tuple(out)

    def _given_clusters(self) -> set[str] | None:
        """Clusters this stream was sent (EDS is limited to them); None when not limited."""
        if TypeUrl.CLUSTER not in self.allowed:
            return None
        cds = self.types.get(TypeUrl.CLUSTER)
        return cds.sent_names if cds is not None and cds.subscribed else set()

    def _visible(self, snapshot: Snapshot, type_url: TypeUrl, ts: TypeState) -> dict[str, Resource]:
        pool = snapshot.resources[type_url]
        names = set(pool) if ts.names is None else {n for n in ts.names if n in pool}
        given = self._given_clusters() if type_url is TypeUrl.ENDPOINT else None
        if given is not None:
            names &= given  # never a CLA for a cluster this stream was not given
        return {n: pool[n] for n in sorted(names)}

    def _build(self, type_url: TypeUrl, ts: TypeState, *, must: bool) -> Response | None:
        """A response computed from the whole snapshot (first send, resubscribe, re-sync)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        visible = self._visible(snapshot, type_url, ts)
        digest = combined_digest(visible.values())
        version = set_version(digest)
        if not must and version in {ts.sent_version, ts.nacked_version}:
            return None
        resources = tuple(visible.values())
        return self._send(
            type_url, ts, version=version, digest=digest, names=set(visible), sent=resources
        )

    def _build_changes(
        self, type_url: TypeUrl, ts: TypeState, held: Snapshot, changed: frozenset[str]
    ) -> Response | None:
        """A response computed from the names that changed since `held` (the parent)."""
        snapshot = self.snapshot
        if snapshot is None or not changed:
            return None
        candidates = set(changed) if ts.names is None else changed & ts.names
        given = self._given_clusters() if type_url is TypeUrl.ENDPOINT else None
        pool, before = snapshot.resources[type_url], held.resources[type_url]
        digest, adds, drops = ts.sent_digest, [], []
        for name in candidates:
            if name in ts.sent_names:
                digest ^= before[name].digest
                drops.append(name)
            if name in pool and (given is None or name in given):
                digest ^= pool[name].digest
                adds.append(name)
        version = set_version(digest)
        if version in {ts.sent_version, ts.nacked_version}:
            return None
        names = ts.sent_names  # this stream's own set: updated in place, O(changes)
        names.difference_update(drops)
        names.update(adds)
        if type_url in FULL_STATE:
            resources = tuple(pool[n] for n in sorted(names))
        else:
            resources = tuple(pool[n] for n in sorted(adds))
        return self._send(type_url, ts, version=version, digest=digest, names=names, sent=resources)

    def _send(
        self,
        type_url: TypeUrl,
        ts: TypeState,
        *,
        version: str,
        digest: int,
        names: set[str],
        sent: tuple[Resource, ...],
    ) -> Response:
        if type_url is TypeUrl.CLUSTER and version != ts.sent_version:
            eds = self.types.get(TypeUrl.ENDPOINT)
            if eds is not None:
                eds.answer_next_ack = True  # Envoy re-requests EDS for a changed cluster
        ts.sent_nonce, ts.sent_version = self._next_nonce(), version
        ts.sent_names, ts.sent_digest = names, digest
        return Response(type_url, version, ts.sent_nonce, sent)


def served_type(type_url: str, allowed: frozenset[TypeUrl]) -> TypeUrl | None:
    """The known type a request names, if this stream serves it."""
    try:
        known = TypeUrl(type_url)
    except ValueError:
        return None
    return known if known in allowed else None


def derived_from(snapshot: Snapshot, held: Snapshot | None) -> bool:
    """True when `snapshot` was derived from `held` (its change list then says it all)."""
    parent = snapshot.parent_versions
    return (
        held is not None
        and snapshot.changes is not None
        and parent is not None
        and (parent is held.versions or parent == held.versions)
    )


def _names(resource_names: Sequence[str]) -> frozenset[str] | None:
    """Subscribed names; None for a wildcard (no names, or `*`)."""
    if not resource_names or WILDCARD in resource_names:
        return None
    # Interned: every stream subscribed to a name shares one string, not a copy per request.
    return frozenset(map(sys.intern, resource_names))
