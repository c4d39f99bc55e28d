"""The state-of-the-world xDS conversation of one stream, as synchronous, I/O-free code.

`StreamState` is driven by two events — a request arrived (a `messages.Request`, decoded by
`wire.py`), the snapshot changed — and returns the responses to send (plain
`messages.Response`s, encoded by `wire.py`) and, for a request, its `Answer` event. It never
awaits and never touches a socket, so every rule
below is tested with plain function calls:

- every request's `resource_names` is the stream's current subscription for its type,
  whatever its nonce; the nonce only says what the request answers: the latest response
  (an ACK, or a NACK with `error_detail`), an older one (stale: not an answer), or none;
- wildcard: only Listener and Cluster have one. Their first request with no names means
  every resource (legacy wildcard, kept while the client goes on sending no names); `*`
  among the names means it too. Otherwise — a later empty list, any empty RDS/EDS
  request — no names means no resources;
- a name that enters the subscription is answered at once, stale nonce or not; names that
  leave it are forgotten (never pushed again, and answered again if they come back);
- an ACK records the accepted version; a NACK records the rejected one, which is not sent
  again on a snapshot change (a newer snapshot is sent normally); the same NACK repeated is
  a `DUPLICATE_NACK`, for counting without logging again;
- every CDS push is followed by that stream's ClusterLoadAssignments, even unchanged ones,
  and the next EDS request that looks like an ACK is answered too (Envoy re-sends its EDS
  request after a cluster changes and waits for an answer while the cluster warms);
- a ClusterLoadAssignment is sent to whoever names it, with or without a Cluster on the
  stream (static clusters with `eds_config: {ads: {}}`), and never held back for a CDS ACK;
- a type the stream does not serve is answered with an empty response (no resources) to
  its first request, so the client stops waiting, and the stream goes on serving the rest;
  a request with no type URL on ADS is invalid (`InvalidRequestError`: INVALID_ARGUMENT);
- a snapshot derived from the one the stream holds (`Snapshot.updated`) is handled from its
  list of changed names: Listener and Cluster responses carry every resource (the protocol
  reads a missing one as removed), ClusterLoadAssignment and RouteConfiguration responses
  carry only the changed ones (the protocol allows it), and versions are updated one entry
  at a time — a change costs the same whether the stream holds a hundred clusters or ten
  thousand.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from xdscp.cache import (
    FULL_STATE,
    WILDCARD_TYPES,
    Resource,
    Snapshot,
    TypeUrl,
    combined_digest,
    entry_digest,
    set_version,
)
from xdscp.server.messages import Request, Response
from xdscp.server.phases import Phase, Step, moved, moves
from xdscp.server.rules import (
    ACCEPTED,
    REJECTED,
    WILDCARD,
    Answer,
    Handled,
    RequestKind,
    StreamCore,
    TypeRecord,
    derived_from,
    eds_after_cds,
    push_order,
    served_type,
)

__all__ = [
    "EMPTY_VERSION",
    "FULL_STATE",
    "WILDCARD",
    "Handled",
    "Request",
    "RequestKind",
    "Response",
    "StreamState",
    "TypeState",
    "derived_from",
]

_ON_SUBSCRIBE, _ON_SEND, _ON_ACK, _ON_NACK = (
    moves(Step.SUBSCRIBE), moves(Step.SEND), moves(Step.ACK), moves(Step.NACK)
)  # fmt: skip
# enum members by module name: one read through the enum class is a Python call (3.11)
_INITIAL = RequestKind.INITIAL
_STALE = RequestKind.STALE
_ACK = RequestKind.ACK
_NACK = RequestKind.NACK
_DUPLICATE_NACK = RequestKind.DUPLICATE_NACK
_RESUBSCRIBE = RequestKind.RESUBSCRIBE
_UNKNOWN_TYPE = RequestKind.UNKNOWN_TYPE
_CDS = TypeUrl.CLUSTER
_EDS = TypeUrl.ENDPOINT
EMPTY_VERSION = set_version(0)  # the version of no resources (an unserved type's answer)


@dataclass(slots=True)
class TypeState(TypeRecord):
    """What one stream has asked for and been sent, for one resource type."""

    names: frozenset[str] | None = None  # None: wildcard
    legacy_wildcard: bool = False  # the first request had no names (Listener, Cluster)
    # What the client holds of what it is subscribed to: name → version (the latest sent,
    # minus names that left the subscription); `sent_digest` is their XOR of entry digests.
    sent: dict[str, str] = field(default_factory=dict)
    sent_digest: int = 0
    stale_sent: bool = False  # `sent` lags the snapshot (a rejected version held back)
    nacked_nonce: str = ""
    answer_next_ack: bool = False
    phase: Phase = Phase.UNSUBSCRIBED  # moves only along `phases.TRANSITIONS`
    # Names whose version in `sent` the client has not accepted: name → the version it
    # accepted (None: none). Empty once the latest response is ACKed: costs O(changes).
    unacked: dict[str, str | None] = field(default_factory=dict)

    def client_view(self) -> Iterator[tuple[str, str | None, str | None, bool]]:
        """(name, version accepted, newer version sent, True when that one was NACKed)."""
        rejected = bool(self.nacked_nonce) and self.nacked_nonce == self.sent_nonce
        for name, version in self.sent.items():
            if name in self.unacked:
                yield name, self.unacked[name], version, rejected
            else:
                yield name, version, None, False
        for name, accepted in self.unacked.items():
            if name not in self.sent and accepted is not None:  # its removal not yet ACKed
                yield name, accepted, None, False

    def note_sent(self, name: str, version: str | None) -> None:
        """Record that `sent[name]` becomes `version` (None: gone) in the next response."""
        before = self.sent.get(name)
        accepted = self.unacked.setdefault(name, before)
        if accepted == version:
            del self.unacked[name]


@dataclass
class StreamState(StreamCore[TypeState]):
    """One xDS stream's protocol state. `allowed` limits the types (standalone services)."""

    def state(self, type_url: TypeUrl) -> TypeState:
        """The per-type state (created on first use)."""
        return self._record(type_url, TypeState)

    def on_request(self, request: Request) -> Handled[Response]:
        """Handle one request: its `Answer` and the responses it calls for."""
        type_url = served_type(request.type_url, self.allowed)
        if type_url is None:
            return self._unserved(request)
        return self._handle(self.state(type_url), type_url, request)

    def _handle(self, ts: TypeState, type_url: TypeUrl, request: Request) -> Handled[Response]:
        """A DiscoveryRequest for a served type: the responses it calls for."""
        kind = _kind(ts, request)
        added = self._subscribe(ts, type_url, request.resource_names)
        error = ""
        if kind is _NACK:
            error = self._nack(ts, request)
        elif kind is _ACK:
            ts.phase = _ON_ACK.get(ts.phase) or moved(ts.phase, Step.ACK)
            ts.acked_version = request.version_info
            ts.unacked.clear()
        warming = kind is _ACK and ts.answer_next_ack
        responses: tuple[Response, ...] = ()
        if kind is _INITIAL or added or warming:
            if kind is _ACK:
                ts.answer_next_ack = False
                kind = _RESUBSCRIBE if added else kind
            responses = self._respond([type_url], force=True)
        return Handled(_answer(ts, type_url, request, kind, error), responses)

    def _unserved(self, request: Request) -> Handled[Response]:
        """A type this stream does not serve: its first request gets an empty answer."""
        answer = Answer(_UNKNOWN_TYPE, request.type_url, request.response_nonce)
        if request.response_nonce:
            return Handled(answer)
        empty = Response(request.type_url, EMPTY_VERSION, self._next_nonce(), ())
        return Handled(answer, (empty,))

    def _nack(self, ts: TypeState, request: Request) -> str:
        ts.phase = _ON_NACK.get(ts.phase) or moved(ts.phase, Step.NACK)
        ts.nacked_nonce = request.response_nonce
        return ts.note_nack(request.error_message)

    def _subscribe(self, ts: TypeState, type_url: TypeUrl, requested: Sequence[str]) -> bool:
        """Make `requested` the subscription; True when it gained names."""
        first, old = not ts.subscribed, ts.names
        names = _names(ts, type_url, requested, first=first)
        if first:
            ts.phase = _ON_SUBSCRIBE.get(ts.phase) or moved(ts.phase, Step.SUBSCRIBE)
            ts.subscribed, ts.names = True, names
            return True  # a first subscription is answered, whatever its nonce says
        if names == old:
            return False  # the same object kept: the status board shares it (`Answer`)
        ts.names = names
        if names is None:
            return True  # wildcard now: every resource is of interest
        gone = list(ts.sent) if old is None else [n for n in old - names if n in ts.sent]
        for name in gone:
            if name not in names:  # the client drops it: forget it was sent
                ts.sent_digest ^= entry_digest(name, ts.sent.pop(name))
                ts.unacked.pop(name, None)
        return old is not None and not names <= old

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
        for type_url in push_order(type_urls):
            ts = self.types.get(type_url)
            after_cds = eds_after_cds(type_url, cds_sent=cds_sent)
            if ts is None or not ts.subscribed or not (after_cds or type_url in type_urls):
                continue
            must = force or after_cds
            changes = self.snapshot.changes
            if must or held is None or changes is None or ts.stale_sent:
                response = self._build(type_url, ts, must=must)
            else:
                response = self._build_changes(type_url, ts, held, changes[type_url])
            if response is not None:
                out.append(response)
                cds_sent = cds_sent or type_url is _CDS
        return tuple(out)

    def _visible(
        self, snapshot: Snapshot, type_url: TypeUrl, ts: TypeState
    ) -> tuple[Resource, ...]:
        """The resources of the snapshot this stream subscribes to (any that exist), by name."""
        pool = snapshot.resources[type_url]
        names = pool if ts.names is None else [n for n in ts.names if n in pool]
        return tuple(pool[n] for n in sorted(names))

    def _holds(self, ts: TypeState, digest: int) -> bool:
        """True when a response of `digest` need not be sent: the client holds it, or
        rejected it (then what it holds lags the snapshot: `stale_sent`)."""
        if ts.sent_nonce and digest == ts.sent_digest:
            return True
        if set_version(digest) == ts.nacked_version:
            ts.stale_sent = True
            return True
        return False

    def _build(self, type_url: TypeUrl, ts: TypeState, *, must: bool) -> Response | None:
        """A response computed from the whole snapshot (first send, resubscribe, re-sync)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        visible = self._visible(snapshot, type_url, ts)
        digest = combined_digest(visible)
        if not must and self._holds(ts, digest):
            return None
        if ts.sent_nonce and digest == ts.sent_digest:
            sent = ts.sent  # the same content again (EDS after CDS): the map is still right
        else:
            sent = {resource.name: resource.version for resource in visible}
            for name in {*ts.sent, *sent}:
                ts.note_sent(name, sent.get(name))
        return self._send(type_url, ts, digest=digest, sent=sent, out=visible)

    def _build_changes(
        self, type_url: TypeUrl, ts: TypeState, held: Snapshot, changed: frozenset[str]
    ) -> Response | None:
        """A response computed from the names that changed since `held` (the parent)."""
        snapshot = self.snapshot
        if snapshot is None or not changed:
            return None
        candidates = changed if ts.names is None else changed & ts.names
        pool, before, sent = snapshot.resources[type_url], held.resources[type_url], ts.sent
        digest, adds, drops = ts.sent_digest, [], []
        for name in candidates:
            version = sent.get(name)
            if version is not None:
                old = before.get(name)  # the parent's entry has the digest computed already
                if old is not None and old.version == version:
                    digest ^= old.digest
                else:
                    digest ^= entry_digest(name, version)
                drops.append(name)
            if name in pool:
                digest ^= pool[name].digest
                adds.append(name)
        if self._holds(ts, digest):
            return None
        for name in {*drops, *adds}:
            ts.note_sent(name, pool[name].version if name in pool else None)
        for name in drops:  # this stream's own map: updated in place, O(changes)
            del sent[name]
        sent.update((name, pool[name].version) for name in adds)
        if type_url in FULL_STATE:
            out = tuple(pool[n] for n in sorted(sent))
        else:
            out = tuple(pool[n] for n in sorted(adds))
        return self._send(type_url, ts, digest=digest, sent=sent, out=out)

    def _send(
        self,
        type_url: TypeUrl,
        ts: TypeState,
        *,
        digest: int,
        sent: dict[str, str],
        out: tuple[Resource, ...],
    ) -> Response:
        version = set_version(digest)
        if type_url is _CDS and version != ts.sent_version:
            eds = self.types.get(_EDS)
            if eds is not None:
                eds.answer_next_ack = True  # Envoy re-requests EDS for a changed cluster
        ts.phase = _ON_SEND.get(ts.phase) or moved(ts.phase, Step.SEND)
        ts.sent_nonce, ts.sent_version = self._next_nonce(), version
        ts.sent, ts.sent_digest, ts.stale_sent = sent, digest, False
        return Response(type_url, version, ts.sent_nonce, out)


def _kind(ts: TypeState, request: Request) -> RequestKind:
    """What a request's nonce says it answers."""
    nonce = request.response_nonce
    if not nonce:
        return _INITIAL
    if nonce != ts.sent_nonce:
        return _STALE
    if request.error_message is None:
        return _ACK
    return _DUPLICATE_NACK if nonce == ts.nacked_nonce else _NACK


def _answer(
    ts: TypeState, type_url: TypeUrl, request: Request, kind: RequestKind, error: str
) -> Answer:
    """The request as an event: the version an ACK accepted or a NACK rejected."""
    version = ""
    if kind in ACCEPTED:
        version = ts.acked_version
    elif kind in REJECTED:
        version = ts.nacked_version
    return Answer(kind, type_url, request.response_nonce, version, error, ts.names)


def _names(
    ts: TypeState, type_url: TypeUrl, requested: Sequence[str], *, first: bool
) -> frozenset[str] | None:
    """The subscription a request's names stand for; None for a wildcard."""
    if type_url in WILDCARD_TYPES:
        if WILDCARD in requested:
            ts.legacy_wildcard = False
            return None
        if not requested:
            ts.legacy_wildcard = ts.legacy_wildcard or first
            return None if ts.legacy_wildcard else frozenset()
        ts.legacy_wildcard = False
    # Interned: every stream subscribed to a name shares one string, not a copy per request.
    return frozenset(map(sys.intern, requested))
