"""The incremental (delta) xDS conversation of one stream, as synchronous, I/O-free code.

Like `StreamState` for state of the world, `DeltaStreamState` is driven by two events — a
request arrived (a `messages.DeltaRequest`), the snapshot changed — and returns the
responses to send (`messages.DeltaResponse`s) and, for a request, its `Answer` event. Per
type it keeps what the client holds (name → version), so each response carries only
resources the client lacks or holds in another version, and the names it holds that are gone:

- names are added and removed with subscribe/unsubscribe, whatever the nonce says; only
  Listener and Cluster have a wildcard: their first request with no names, or `*` among
  the names, subscribes to every resource of the type (RDS and EDS: no names, nothing);
- a name subscribed again after an unsubscribe is answered, even with a version the client
  once rejected (it forgot everything about the name);
- `initial_resource_versions` (a reconnecting client) counts as held: nothing the client
  already has is sent again;
- a subscribed name that does not exist is answered in `removed_resources`, so the client
  stops waiting for it;
- resources are taken as held when sent; a NACK puts back what the client held before that
  response, of the names it still subscribes to (an unsubscribed name is forgotten, in the
  responses awaiting an answer too), and the rejected version of each resource is never
  sent again (a newer one is);
  a NACK of a nonce already NACKed is a `DUPLICATE_NACK` (counted, not logged again);
- a type the stream does not serve is answered with its subscribed names as removed (to
  the first request, and to each that subscribes names), so the client stops waiting;
- every Cluster sent is followed by its ClusterLoadAssignment, even an unchanged one, so a
  changed cluster never waits out `initial_fetch_timeout` while warming;
- a snapshot derived from the one held (`Snapshot.updated`) is handled from its change list;
- each type's `Phase` (where its latest response stands) moves only along
  `delta_phases.DELTA_TRANSITIONS`, and `delta_phases.delta_violations` names the rules
  tying the other fields to it that a state breaks (none: the property tests check it).

What the status board needs of a type is told as an event: after each request or snapshot
`events()` gives a `DeltaHolding` per type the call changed (an ACK alone changes only
what its `Answer` tells: the response it names no longer awaits an answer, and the version
accepted; a stale or repeated answer changes nothing), made of immutable objects the
state shares, never copies of what the client holds: the state keeps that in a plain dict
it changes in place, and tells it as a copy (two tuples: names, versions) plus each later
batch of changes, a new copy every `_FOLD` batches. A batch is a tuple of (name, version
before, version after) — a response's batch is the very tuple that response keeps, while it
awaits an answer, of what it replaced — so telling a change makes no container the state did
not make anyway; the subscribed names are a frozenset replaced (not changed) when they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import immutables

from xdscp.cache import WILDCARD_TYPES, Resource, Snapshot, TypeUrl, entry_digest, set_version
from xdscp.server.delta_phases import MAX_PENDING, DeltaStep, delta_moved, delta_moves
from xdscp.server.messages import DeltaRequest, DeltaResponse
from xdscp.server.phases import Phase
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
from xdscp.server.tracks import DeltaHolding

__all__ = [
    "MAX_PENDING",
    "DeltaHolding",
    "DeltaRequest",
    "DeltaResponse",
    "DeltaStreamState",
    "DeltaTypeState",
]

_Held = dict[str, str]  # resource name → version the client holds (the state's own)
# a copy of what the client holds: (names, their versions)
_Copy = tuple[tuple[str, ...], tuple[str, ...]]
_FOLD = 8  # batches told beside the latest copy of `held` before a new copy is made
# one call's changes to what the client holds, by name: (name, the version held before, the
# version held after); None: none, removed. A response's is what it replaced (sorted), kept
# while it awaits an answer. A tuple: never changed once made, so events share it
_Undo = tuple[tuple[str, str | None, str | None], ...]
_Entries = list[tuple[str, str | None, str | None]]  # a batch being made
_NOTHING_TOLD: _Copy = ((), ())
_NOTHING_REJECTED: immutables.Map[str, str] = immutables.Map()
_new_holding = tuple.__new__
_ON = {step: delta_moves(step) for step in DeltaStep}
_ON_SEND, _ON_ACK, _ON_SETTLE = _ON[DeltaStep.SEND], _ON[DeltaStep.ACK], _ON[DeltaStep.SETTLE]
# enum members by module name: one read through the enum class is a Python call (3.11)
_INITIAL = RequestKind.INITIAL
_STALE = RequestKind.STALE
_ACK = RequestKind.ACK
_NACK = RequestKind.NACK
_DUPLICATE_NACK = RequestKind.DUPLICATE_NACK
_RESUBSCRIBE = RequestKind.RESUBSCRIBE
_NONE = RequestKind.NONE
_UNKNOWN_TYPE = RequestKind.UNKNOWN_TYPE
_CDS = TypeUrl.CLUSTER


@dataclass(slots=True)
class DeltaTypeState(TypeRecord):
    """One type's subscription and what the client holds (names as in `TypeState`)."""

    wildcard: bool = False
    explicit: frozenset[str] = frozenset()  # replaced, never changed: events share it
    held: _Held = field(default_factory=dict)  # changed in place, never told
    told: _Copy = _NOTHING_TOLD  # a copy of `held` before `told_log`: shared with events
    told_log: tuple[_Undo, ...] = ()  # the batches since, oldest first: shared too
    digest: int = 0  # XOR of the entry digests of `held`: its version, kept up to date
    named_digest: int = 0  # the latest digest made a version (`held_version`), and that one
    named_version: str = set_version(0)
    pending: dict[str, _Undo] = field(default_factory=dict)  # nonce → what it replaced
    # `pending` as told, (nonce, undo) pairs (None: made again when next told): a response
    # sent adds to it, an ACK that leaves none awaiting empties it, both without a copy
    told_pending: tuple[tuple[str, _Undo], ...] | None = ()
    nacked_nonces: dict[str, None] = field(default_factory=dict)  # the latest, oldest first
    rejected: dict[str, str] = field(default_factory=dict)  # name → the version rejected
    blocked: set[str] = field(default_factory=set)  # wanted at a version the client rejected
    phase: Phase = Phase.UNSUBSCRIBED  # moves only along `delta_phases.DELTA_TRANSITIONS`

    @property
    def names(self) -> frozenset[str] | None:
        """Subscribed names; None for a wildcard subscription."""
        return None if self.wildcard else self.explicit

    def wants(self, name: str) -> bool:
        """True when the client is subscribed to `name`."""
        return self.wildcard or name in self.explicit

    def hold(self, held: _Held, name: str, version: str | None) -> str | None:
        """Record in `held` (`self.held`) that the client holds `version` of `name` (None:
        nothing); the previous. The caller tells the change in a batch (`tell`)."""
        previous = held.pop(name, None)
        if previous is not None:
            self.digest ^= entry_digest(name, previous)
        if version is not None:
            held[name] = version
            self.digest ^= entry_digest(name, version)
        return previous

    def send(self, held: _Held, resource: Resource, prior: Mapping[str, Resource]) -> str | None:
        """`hold` the version of `resource` (sent): its entry digest is the resource's, and
        that of the version it replaces is that of `prior`'s resource of the name (a pool of
        the snapshot before) when it has that version; the previous."""
        name = resource.name
        previous = held.pop(name, None)
        if previous is not None:
            old = prior.get(name)
            if old is not None and old.version == previous:
                self.digest ^= old.digest
            else:
                self.digest ^= entry_digest(name, previous)
        held[name] = resource.version
        self.digest ^= resource.digest
        return previous

    def tell(self, batch: _Undo) -> None:
        """Tell one call's changes to `held` (`hold`): the batch, shared, beside the latest
        copy of `held` (two tuples), replaced by a new copy every `_FOLD` batches."""
        if not batch:
            return
        log = self.told_log
        if len(log) < _FOLD - 1:
            self.told_log = (*log, batch)
        else:  # the batch is in the copy
            self.told, self.told_log = (tuple(self.held), tuple(self.held.values())), ()

    def holding(self, type_url: TypeUrl) -> DeltaHolding:
        """This type as the status board is told of it (references, no copy)."""
        rejected = _NOTHING_REJECTED
        if self.blocked:  # rare: a rejected version held back
            blocked = {n: self.rejected[n] for n in self.blocked if n in self.rejected}
            rejected = immutables.Map(blocked)
        pending = self.told_pending
        if pending is None:
            pending = self.told_pending = tuple(self.pending.items())
        told = (
            type_url,
            None if self.wildcard else self.explicit,
            self.told,
            self.told_log,
            pending,
            rejected,
            self.sent_version,
            self.acked_version,
        )
        return _new_holding(DeltaHolding, told)  # the named tuple's C constructor: one per event

    def client_view(self) -> Iterator[tuple[str, str | None, str | None, bool]]:
        """(name, version accepted, newer version sent, True when that one was NACKed)."""
        accepted: dict[str, str | None] = {}
        for undo in self.pending.values():  # oldest first: the version before them all
            for name, previous, _ in undo:
                accepted.setdefault(name, previous)
        for name in {*self.held, *accepted, *self.blocked}:
            held = self.held.get(name)
            if name in self.blocked and name in self.rejected:
                yield name, held, self.rejected[name], True
            elif name in accepted:
                yield name, accepted[name], held, False
            elif held is not None:
                yield name, held, None, False

    def move(self, step: DeltaStep) -> None:
        """Take `step` (`IllegalTransitionError` if the table has no such move)."""
        self.phase = _ON[step].get(self.phase) or delta_moved(self.phase, step)

    @property
    def held_version(self) -> str:
        """A version for what the client holds (order-free, like snapshot versions); made
        once per change of `held` (a type a snapshot left alone settles every time)."""
        digest = self.digest
        if digest != self.named_digest:
            self.named_digest, self.named_version = digest, set_version(digest)
        return self.named_version


@dataclass
class DeltaStreamState(StreamCore[DeltaTypeState]):
    """One delta xDS stream's protocol state. `allowed` limits the types (per-type services)."""

    _changed: dict[TypeUrl, None] = field(default_factory=dict)  # types to tell, in order

    def state(self, type_url: TypeUrl) -> DeltaTypeState:
        """The per-type state (created on first use)."""
        return self._record(type_url, DeltaTypeState)

    def events(self) -> tuple[DeltaHolding, ...]:
        """Each type the calls since the last one changed, as the status board is told of
        it (a `DeltaHolding`: references the state shares)."""
        changed = self._changed
        if not changed:
            return ()
        if len(changed) == 1:
            only, _ = changed.popitem()
            return (self.types[only].holding(only),)
        types = self.types
        told = tuple([types[t].holding(t) for t in changed])
        changed.clear()
        return told

    def on_request(self, request: DeltaRequest) -> Handled[DeltaResponse]:
        """Handle one request: its `Answer` and the responses it calls for."""
        type_url = served_type(request.type_url, self.allowed)
        if type_url is None:
            return self._unserved(request)
        return self._handle(self.state(type_url), type_url, request)

    def _handle(
        self, ts: DeltaTypeState, type_url: TypeUrl, request: DeltaRequest
    ) -> Handled[DeltaResponse]:
        """A DeltaDiscoveryRequest for a served type: the responses it calls for."""
        kind, error = _NONE, ""
        if request.response_nonce:
            kind, error = self._answer(ts, request)
        first = not ts.subscribed
        added: set[str] = set()
        if first or request.subscribe or request.unsubscribe:
            self._changed[type_url] = None
            added = self._subscribe(ts, type_url, request, first=first)
        elif kind is _NACK:
            self._changed[type_url] = None  # else told by the `Answer` (see the module doc)
        if first:
            kind = _INITIAL
        elif added and kind in (_NONE, _ACK):
            kind = _RESUBSCRIBE
        responses: tuple[DeltaResponse, ...] = ()
        if first or added:
            responses = self._respond([type_url], candidates={type_url: added}, force=set())
        version = ""
        if kind in ACCEPTED:
            version = ts.acked_version
        elif kind in REJECTED:
            version = ts.nacked_version
        names = None if ts.wildcard else ts.explicit
        answer = Answer(kind, type_url, request.response_nonce, version, error, names)
        return Handled(answer, responses)

    def _unserved(self, request: DeltaRequest) -> Handled[DeltaResponse]:
        """A type this stream does not serve: every name it subscribes does not exist."""
        answer = Answer(_UNKNOWN_TYPE, request.type_url, request.response_nonce)
        if request.response_nonce and not request.subscribe:
            return Handled(answer)
        removed = tuple(n for n in request.subscribe if n != WILDCARD)
        empty = DeltaResponse(request.type_url, self._next_nonce(), "", (), removed)
        return Handled(answer, (empty,))

    def _answer(self, ts: DeltaTypeState, request: DeltaRequest) -> tuple[RequestKind, str]:
        """An ACK or NACK of one of our responses (or a stale one we no longer track)."""
        nonce = request.response_nonce
        undo = ts.pending.pop(nonce, None)
        if undo is None:
            nacked = request.error_message is not None and nonce in ts.nacked_nonces
            return (_DUPLICATE_NACK if nacked else _STALE), ""
        ts.told_pending = None if ts.pending else ()
        if request.error_message is None:
            if nonce == ts.sent_nonce:
                ts.acked_version = ts.sent_version
                ts.phase = _ON_ACK.get(ts.phase) or delta_moved(ts.phase, DeltaStep.ACK)
            return _ACK, ""
        ts.move(DeltaStep.NACK if nonce == ts.sent_nonce else DeltaStep.NACK_EARLIER)
        ts.nacked_nonces[nonce] = None
        while len(ts.nacked_nonces) > MAX_PENDING:
            del ts.nacked_nonces[next(iter(ts.nacked_nonces))]
        ts.acked_version = _put_back(ts, nonce, undo)
        return _NACK, ts.note_nack(request.error_message)

    def _subscribe(
        self, ts: DeltaTypeState, type_url: TypeUrl, request: DeltaRequest, *, first: bool
    ) -> set[str]:
        """Apply (un)subscriptions; the names newly of interest (every name: wildcard)."""
        added: set[str] = set()
        wildcard_type = type_url in WILDCARD_TYPES
        pool = self.snapshot.resources[type_url] if self.snapshot is not None else {}
        if first:
            ts.subscribed = True
            ts.move(DeltaStep.SUBSCRIBE)
            ts.wildcard = wildcard_type and not request.subscribe
            if request.initial_versions:
                held = ts.held
                ts.tell(
                    tuple(
                        (name, ts.hold(held, name, version), version)
                        for name, version in request.initial_versions.items()
                    )
                )
            if ts.wildcard:
                added |= set(pool)
        new: list[str] = []
        for name in request.subscribe:
            if name == WILDCARD and wildcard_type:
                if not ts.wildcard:
                    added |= set(pool)
                ts.wildcard = True
            elif name not in ts.explicit:
                new.append(name)
        if new:  # one new frozenset per request: the one events share
            ts.explicit = ts.explicit.union(new)
            added.update(new)
        _unsubscribe(ts, request.unsubscribe, wildcard_type=wildcard_type)
        if first:  # a reconnecting client's initial versions: only what it subscribes to
            unwanted = [n for n in ts.held if not ts.wants(n)]
            if unwanted:
                held = ts.held
                ts.tell(tuple((name, ts.hold(held, name, None), None) for name in unwanted))
            added |= set(ts.held)  # held but gone: answered as removed
        return added

    def on_snapshot(self, snapshot: Snapshot) -> tuple[DeltaResponse, ...]:
        """A new snapshot: send each subscribed type's resources the client lacks."""
        held_snapshot, self.snapshot = self.snapshot, snapshot
        derived = derived_from(snapshot, held_snapshot)
        candidates: dict[TypeUrl, set[str]] = {}
        for type_url, ts in self.types.items():
            if not ts.subscribed:
                continue
            if derived and snapshot.changes is not None:
                candidates[type_url] = set(snapshot.changes[type_url])
            else:
                candidates[type_url] = set(snapshot.resources[type_url]) | set(ts.held)
        return self._respond(
            list(candidates), candidates=candidates, force=set(), before=held_snapshot
        )

    def _respond(
        self,
        type_urls: Sequence[TypeUrl],
        *,
        candidates: Mapping[TypeUrl, Iterable[str]],
        force: set[str],
        before: Snapshot | None = None,
    ) -> tuple[DeltaResponse, ...]:
        """The responses for `type_urls`; `before`: the snapshot served until now, whose
        resources' digests spare making those of the versions the client held again."""
        if self.snapshot is None:
            return ()
        out: list[DeltaResponse] = []
        clusters_sent: set[str] = set()
        for type_url in push_order(type_urls):
            ts = self.types.get(type_url)
            if ts is None or not ts.subscribed:
                continue
            names = set(candidates.get(type_url, ()))
            resend: set[str] = set()
            if eds_after_cds(type_url, cds_sent=bool(clusters_sent)):
                resend = {n for n in clusters_sent if ts.wants(n)}  # warming: CLA after Cluster
                names |= resend
            response = self._build(type_url, ts, names, resend | force, before)
            if response is not None:
                out.append(response)
                if type_url is _CDS:
                    clusters_sent = {r.name for r in response.resources}
        return tuple(out)

    def _build(
        self,
        type_url: TypeUrl,
        ts: DeltaTypeState,
        names: set[str],
        resend: set[str],
        before: Snapshot | None,
    ) -> DeltaResponse | None:
        assert self.snapshot is not None  # noqa: S101 - checked by the caller
        if not names:
            self._settle(type_url, ts)
            return None
        pool = self.snapshot.resources[type_url]
        prior = pool if before is None else before.resources[type_url]
        undo: _Entries = []  # what it replaced: the batch told
        held = ts.held
        resources: list[Resource] = []
        removed: list[str] = []
        blocked = ts.blocked
        unblocked = [name for name in names if name in blocked] if blocked else ()
        for name in sorted(names):
            if not ts.wants(name):
                continue
            current = pool.get(name)
            if current is None:
                blocked.discard(name)
                if name in held or not ts.wildcard:
                    removed.append(name)  # gone, or asked for but absent
                    undo.append((name, ts.hold(held, name, None), None))
                continue
            if current.version == ts.rejected.get(name):
                if name not in blocked:
                    blocked.add(name)
                    self._changed[type_url] = None
                continue
            blocked.discard(name)
            if held.get(name) != current.version or name in resend:
                resources.append(current)
                undo.append((name, ts.send(held, current, prior), current.version))
        if unblocked and any(name not in blocked for name in unblocked):
            self._changed[type_url] = None
        if not resources and not removed:
            self._settle(type_url, ts)
            return None
        self._changed[type_url] = None
        replaced = tuple(undo)
        ts.tell(replaced)
        ts.sent_nonce = self._next_nonce()
        ts.pending[ts.sent_nonce] = replaced
        told = ts.told_pending
        if told is not None:
            ts.told_pending = (*told, (ts.sent_nonce, replaced))
        while len(ts.pending) > MAX_PENDING:
            del ts.pending[next(iter(ts.pending))]
            ts.told_pending = None
        ts.sent_version = ts.held_version
        ts.phase = _ON_SEND.get(ts.phase) or delta_moved(ts.phase, DeltaStep.SEND)
        version = self.snapshot.versions[type_url]
        return DeltaResponse(type_url, ts.sent_nonce, version, tuple(resources), tuple(removed))

    def _settle(self, type_url: TypeUrl, ts: DeltaTypeState) -> None:
        """Nothing to send: with nothing held back nor awaiting an answer, in sync."""
        if ts.blocked or ts.pending:
            return
        version = ts.held_version
        if version != ts.sent_version or version != ts.acked_version:
            self._changed[type_url] = None
            ts.sent_version = ts.acked_version = version  # caught up, nothing to send
        ts.phase = _ON_SETTLE.get(ts.phase) or delta_moved(ts.phase, DeltaStep.SETTLE)


def _put_back(ts: DeltaTypeState, nonce: str, undo: _Undo) -> str:
    """The client NACKed response `nonce`: it holds again what it held before it, and each
    version it rejected is never sent again (a newer one is). Returns the held version."""
    later = {
        n: {name: (before, sent) for name, before, sent in replaced}
        for n, replaced in ts.pending.items()
        if int(n) > int(nonce)
    }  # oldest first
    changed: set[str] = set()
    held = ts.held
    batch: _Entries = []
    for name, previous, sent in undo:
        after = next((n for n, replaced in later.items() if name in replaced), None)
        if after is None:
            if held.get(name) == sent:
                batch.append((name, ts.hold(held, name, previous), previous))
        elif later[after][name][0] == sent:  # a later response replaced the rejected version
            later[after][name] = (previous, later[after][name][1])
            changed.add(after)
        if sent is not None and sent != previous and ts.wants(name):
            ts.rejected[name] = sent  # never sent again; a newer version is
            ts.blocked.add(name)
    for n in changed:  # immutable (events share them): changed copies
        ts.pending[n] = tuple((name, *versions) for name, versions in later[n].items())
        ts.told_pending = None
    ts.tell(tuple(batch))
    return ts.held_version


def _unsubscribe(ts: DeltaTypeState, names: Sequence[str], *, wildcard_type: bool) -> None:
    """Drop names from the subscription; the client forgets what it no longer wants."""
    if not names:
        return
    dropped = [n for n in names if not (n == WILDCARD and wildcard_type)]
    if ts.explicit.intersection(dropped):  # one new frozenset: the one events share
        ts.explicit = ts.explicit.difference(dropped)
    if len(dropped) < len(names):  # `*` among them
        ts.wildcard = False
        dropped += [n for n in (*ts.held, *ts.rejected) if n not in ts.explicit]
    held = ts.held
    batch: _Entries = []
    for name in dropped:
        if not ts.wants(name):
            batch.append((name, ts.hold(held, name, None), None))
            ts.rejected.pop(name, None)  # and what it rejected: a re-subscription is new
            ts.blocked.discard(name)
    ts.tell(tuple(batch))
    # a NACK of an earlier response cannot put back what the client forgot
    for nonce, undo in list(ts.pending.items()):
        if not all(ts.wants(entry[0]) for entry in undo):  # immutable (events share it): a copy
            ts.pending[nonce] = tuple(entry for entry in undo if ts.wants(entry[0]))
            ts.told_pending = None
