"""The status board is built from stream events alone.

- For any conversation (hypothesis: requests, answers in any order, NACKs, stale and
  duplicate answers, subscription changes, derived and fresh snapshots, a delta client's
  initial versions), the event-built `StreamRecord` reports exactly what the status board
  reported when it read the stream's state through a view (the former `StreamView` code,
  kept below as the oracle), for state of the world and delta;
- the record never reaches the stream's protocol state, nor any mutable object the state
  holds: only immutable objects they share (snapshots, frozensets, persistent maps).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.server.recorded import Recorded
from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server.delta import DeltaRequest, DeltaStreamState, DeltaTypeState
from xdscp.server.nodes import NodeInfo
from xdscp.server.protocol import Request, StreamState, TypeState
from xdscp.server.rules import ACCEPTED, Answer, RequestKind
from xdscp.server.status import (
    ClientStatus,
    ConfigStatus,
    Nack,
    ResourceStatus,
    StreamRecord,
    Times,
    truncate,
)

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT
UNSERVED = "type.googleapis.com/xdscp.test.Unserved"
NAMES = ("a", "b", "c", "z")


# --- the oracle: the status board as it read a stream's state through a view ---------


@dataclass
class ViewRecord:
    """What `StreamRecord` was before events: times and NACKs told, the rest read from
    the stream's state (its snapshot, each type's `names`, versions and `client_view`)."""

    state: Any
    times: dict[str, Times] = field(default_factory=dict)
    nacks: deque[Nack] = field(default_factory=deque)

    def on_push(self, type_url: str, now: float) -> None:
        self.times.setdefault(type_url, Times()).pushed = now

    def on_answer(self, answer: Answer, now: float) -> None:
        if answer.kind in ACCEPTED:
            self.times.setdefault(answer.type_url, Times()).acked = now
        elif answer.kind is RequestKind.NACK:
            self.times.setdefault(answer.type_url, Times()).nacked = now
            error = truncate(answer.error)
            self.nacks.append(Nack(now, answer.type_url, answer.version, answer.nonce, error))

    def resources(self) -> Iterator[ResourceStatus]:
        snapshot = self.state.snapshot
        for type_url, ts in self.state.types.items():
            if ts.subscribed:
                latest = next((n for n in reversed(self.nacks) if n.type_url == type_url), None)
                times = self.times.get(type_url, Times())
                yield from _view_statuses(type_url, ts, snapshot, times, latest)

    def types_json(self) -> dict[str, Any]:
        return {
            str(t): {
                "subscribed": "*" if ts.names is None else sorted(ts.names),
                "sent_version": ts.sent_version,
                "acked_version": ts.acked_version,
                "in_sync": bool(ts.sent_version) and ts.acked_version == ts.sent_version,
            }
            for t, ts in self.state.types.items()
            if ts.subscribed
        }


def _view_statuses(
    type_url: TypeUrl, ts: Any, snapshot: Snapshot | None, times: Times, nack: Nack | None
) -> Iterator[ResourceStatus]:
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


# --- one conversation, told to both ---------------------------------------------------


def _world(spec: Mapping[str, int]) -> list[Resource]:
    return [Resource(t, n, b"%s%d" % (t[-1:].encode(), v)) for t in (C, E) for n, v in spec.items()]


class Both:
    """One stream state; the event-built record and the view-based oracle, told alike."""

    def __init__(self, delta: bool, first: Snapshot | None) -> None:
        self.delta = delta
        self.state: Any = (DeltaStreamState if delta else StreamState)(snapshot=first)
        self.record = StreamRecord(NodeInfo("n1"), "ADS", "envoy", first, delta=delta)
        self.fed = Recorded(self.state, self.record)
        self.old = ViewRecord(self.state)
        self.clock = 100.0
        self.outstanding: list[Any] = []
        self.names: dict[str, tuple[str, ...]] = {}
        self.last: dict[str, Any] = {}  # type → the latest response received
        self.last_nack: dict[str, Any] = {}

    def request(self, request: Any) -> None:
        self.clock += 1
        handled = self.fed.request(request, self.clock)
        self.old.on_answer(handled.answer, self.clock)
        self._received(handled.responses)

    def snapshot(self, snapshot: Snapshot) -> None:
        self.clock += 1
        self._received(self.fed.snapshot(snapshot, self.clock))

    def _received(self, responses: Any) -> None:
        for response in responses:
            self.old.on_push(response.type_url, self.clock)
            self.outstanding.append(response)
            self.last[response.type_url] = response

    def answer(self, pick: int, accept: bool) -> None:
        if not self.outstanding:
            return
        r = self.outstanding.pop(pick % len(self.outstanding))
        error = None if accept else f"rejected {r.nonce}"
        if self.delta:
            self.request(DeltaRequest(r.type_url, response_nonce=r.nonce, error_message=error))
        else:
            names = self.names.get(r.type_url, ())
            self.request(Request(r.type_url, r.version_info, r.nonce, names, error))
        if not accept:
            self.last_nack[r.type_url] = r

    def repeat_nack(self, type_url: str) -> None:
        r = self.last_nack.get(type_url)
        if r is None:
            return
        if self.delta:
            self.request(DeltaRequest(type_url, response_nonce=r.nonce, error_message="again"))
        else:
            names = self.names.get(type_url, ())
            self.request(Request(type_url, r.version_info, r.nonce, names, "again"))

    def subscribe(
        self, type_url: str, names: tuple[str, ...], initial: dict[str, str], stale: bool = False
    ) -> None:
        old = self.names.get(type_url)
        self.names[type_url] = names
        last = self.last.get(type_url)
        if self.delta:
            if old is None:
                self.request(DeltaRequest(type_url, names, initial_versions=initial))
            else:
                gone = tuple(n for n in old if n not in names)
                self.request(DeltaRequest(type_url, names, gone))
        else:
            version, nonce = (last.version_info, last.nonce) if last is not None else ("", "")
            if stale:  # answers no response: not an ACK
                version, nonce = "v0", "0"
            self.request(Request(type_url, version, nonce, names))

    def check(self) -> None:
        assert list(self.record.resources()) == list(self.old.resources())
        assert self.record.as_json()["types"] == {
            k.rsplit(".", 1)[-1]: v for k, v in self.old.types_json().items()
        }
        assert list(self.record.nacks) == list(self.old.nacks)


NAME_SETS = st.lists(st.sampled_from((*NAMES, "*")), max_size=4, unique=True).map(tuple)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("answer"), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("nack again"), st.sampled_from((C, E))),
        st.tuples(
            st.just("subscribe"), st.sampled_from((C, E, UNSERVED)), NAME_SETS, st.booleans()
        ),
        st.tuples(
            st.just("snapshot"),
            st.dictionaries(st.sampled_from(NAMES), st.integers(0, 3)),
            st.booleans(),  # derived from the one before (its change list) or fresh
        ),
    ),
    max_size=30,
)
INITIAL = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(("v-old", "")), max_size=3)


_DROP_AND_READD = [
    ("subscribe", E, ("a", "b"), False), ("answer", 0, True), ("subscribe", E, ("b",), True),
    ("subscribe", E, ("a", "b"), True),
]  # fmt: skip
_REMOVED_THEN_DROPPED = [
    ("subscribe", C, ("a", "b"), False), ("answer", 0, True), ("snapshot", {"a": 1}, True),
    ("subscribe", C, ("a",), True), ("subscribe", C, ("a", "b"), True),
]  # fmt: skip
_WILDCARD_NARROWED = [
    ("subscribe", C, (), False), ("answer", 0, True), ("subscribe", C, ("a",), True),
    ("subscribe", C, ("a", "b"), True), ("answer", 0, False), ("nack again", C),
]  # fmt: skip

_EDS_AFTER_CDS = [
    ("subscribe", E, ("a",), False), ("answer", 0, True), ("subscribe", C, ("a",), False),
    ("snapshot", {"a": 1}, True), ("snapshot", {"a": 2}, True), ("answer", 3, False),
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@example(delta=False, first={"a": 0, "b": 1}, initial={}, actions=_DROP_AND_READD)
@example(delta=True, first={"a": 0, "b": 1}, initial={}, actions=_DROP_AND_READD)
@example(delta=False, first={"a": 0, "b": 1}, initial={}, actions=_REMOVED_THEN_DROPPED)
@example(delta=False, first={"a": 0, "b": 1}, initial={}, actions=_WILDCARD_NARROWED)
@example(delta=True, first={"a": 0, "b": 1}, initial={"a": ""}, actions=_WILDCARD_NARROWED)
@example(delta=True, first={"a": 0, "b": 1}, initial={}, actions=_EDS_AFTER_CDS)
@given(
    delta=st.booleans(),
    first=st.one_of(st.none(), st.dictionaries(st.sampled_from(NAMES), st.integers(0, 3))),
    initial=INITIAL,
    actions=ACTIONS,
)
def test_the_event_built_status_equals_the_view_based_one(
    delta: bool,
    first: dict[str, int] | None,
    initial: dict[str, str],
    actions: list[tuple[Any, ...]],
) -> None:
    """Any conversation, either variant: every resource's status, each type's versions
    and subscription, and the NACK history agree with what reading the state reported."""
    snapshot = Snapshot.of(_world(first)) if first is not None else None
    both = Both(delta, snapshot)
    held = {n: snapshot.resources[C][n].version if v == "" and snapshot is not None
            and n in snapshot.resources[C] else v for n, v in initial.items()}  # fmt: skip
    for action, *args in actions:
        if action == "answer":
            both.answer(*args)
        elif action == "nack again":
            both.repeat_nack(args[0])
        elif action == "subscribe":
            type_url, names, stale = args
            both.subscribe(type_url, names, held if type_url == C else {}, stale)
        else:
            spec, derived = args
            new = _world(spec)
            if derived and snapshot is not None:
                names = {(r.type_url, r.name) for r in new}
                gone = {
                    t: [n for n in snapshot.resources[t] if (t, n) not in names] for t in (C, E)
                }
                snapshot = snapshot.updated(new, gone)
            else:
                snapshot = Snapshot.of(new)
            both.snapshot(snapshot)
        both.check()


# --- the record never reaches the protocol state ----------------------------------------

_SKIP = (type, ModuleType, FunctionType, MethodType, BuiltinFunctionType, Enum)  # constants
_MUTABLE = (dict, list, set, deque, bytearray, StreamState, DeltaStreamState, TypeState,
            DeltaTypeState)  # fmt: skip


def reachable(root: object, stop: tuple[type, ...] = ()) -> dict[int, object]:
    """Every object reachable from `root` through `gc.get_referents` (not into types,
    modules, functions or enum members; not past instances of `stop`), by id."""
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen[id(obj)] = obj
        if not isinstance(obj, stop):
            todo.extend(gc.get_referents(obj))
    return seen


def protocol_objects(state: Any) -> dict[int, object]:
    """The state, its per-type records and every mutable object they hold (the snapshot
    served, shared by every stream of the group and never changed, is not theirs)."""
    return {i: o for i, o in reachable(state, stop=(Snapshot,)).items() if isinstance(o, _MUTABLE)}


def _reaches_protocol(record: object, state: Any) -> list[object]:
    forbidden = protocol_objects(state)
    return [o for i, o in reachable(record).items() if i in forbidden]


@settings(max_examples=100, deadline=None)
@given(delta=st.booleans(), actions=ACTIONS)
def test_the_record_never_holds_the_protocol_state(
    delta: bool, actions: list[tuple[Any, ...]]
) -> None:
    """After any conversation, nothing reachable from the record (its fields, their
    fields, ...) is the stream's state, a type's record, or a dict, list or set the state
    holds; and the check finds the state when it is reachable."""
    snapshot = Snapshot.of(_world({"a": 0, "b": 1}))
    both = Both(delta, snapshot)
    both.subscribe(C, (), {})
    both.subscribe(E, ("a", "b"), {})
    for action, *args in actions:
        if action == "answer":
            both.answer(*args)
        elif action == "subscribe" and args[0] != UNSERVED:
            both.subscribe(args[0], args[1], {}, args[2])
        elif action == "snapshot":
            snapshot = snapshot.updated(_world(args[0]), {})
            both.snapshot(snapshot)
    assert _reaches_protocol(both.record, both.state) == []
    leaked = (both.record, both.state.types[E])  # the check can fail: a type's record
    assert both.state.types[E] in _reaches_protocol(leaked, both.state)
