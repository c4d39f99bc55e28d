"""Property tests over both stream states: arbitrary requests, crossings and snapshots.

A model client talks to `StreamState` (SotW) or `DeltaStreamState`: it subscribes and
unsubscribes (Cluster, which has a wildcard, and ClusterLoadAssignment, which has none),
ACKs and NACKs the latest response it processed, sends stale and garbage nonces, and
processes responses late (they cross its requests), while snapshots — whole or derived —
replace each other. On every response: nonces increase, the version is set, the type URL
matches, nothing is pushed outside the subscription the server was last told, and a
rejected version is not pushed again. At the end a fresh snapshot is published and the
client ACKs until quiet: it then holds exactly that snapshot filtered by its subscription
(every subscribed resource that exists was answered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server.delta import DeltaRequest, DeltaResponse, DeltaStreamState
from xdscp.server.protocol import WILDCARD, Request, RequestKind, Response, StreamState

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT
NAMES = ("a", "b", "c")
World = dict[TypeUrl, dict[str, int]]
Sub = frozenset[str] | None  # None: wildcard

_pools = st.dictionaries(st.sampled_from(NAMES), st.integers(0, 2), max_size=3)
_worlds = st.fixed_dictionaries({C: _pools, E: _pools})
_names = st.lists(st.sampled_from((*NAMES, WILDCARD)), max_size=4, unique=True).map(tuple)
_nonces = st.sampled_from(["latest", "latest", "older", "garbage", "empty"])
_types = st.sampled_from([C, E])
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), _worlds, st.booleans()),
        st.tuples(st.just("read"), st.integers(1, 3)),
        st.tuples(st.just("answer"), _types, st.booleans()),  # read all, ACK/NACK the latest
        st.tuples(st.just("answer"), _types, st.booleans()),
        st.tuples(st.just("request"), _types, _names, _names, _nonces, st.booleans()),
    ),
    min_size=4,
    max_size=40,
)


def _set(sub: Sub, pool: set[str]) -> set[str]:
    return set(pool) if sub is None else set(sub)


def resources(world: World, tag: str = "") -> list[Resource]:
    return [
        Resource(t, n, f"{t.name}{n}{v}{tag}".encode()) for t, pool in world.items()
        for n, v in pool.items()
    ]  # fmt: skip


class Publisher:
    """The snapshots the stream is given, whole or derived from the previous one."""

    def __init__(self) -> None:
        self.current = Snapshot.of([])

    def publish(self, world: World, *, derived: bool, tag: str = "") -> Snapshot:
        fresh = resources(world, tag)
        if derived:
            gone = {t: [n for n in self.current.resources[t] if n not in world[t]] for t in (C, E)}
            self.current = self.current.updated(fresh, gone)
        else:
            self.current = Snapshot.of(fresh)
        return self.current


@dataclass
class Seen:
    """One processed response: its nonce and version, and what the client held before."""

    nonce: str
    version: str
    before: dict[str, str]


@dataclass
class ModelBase:
    """What both protocol variants share in the model client."""

    inflight: list[Any] = field(default_factory=list)
    seen: dict[TypeUrl, list[Seen]] = field(default_factory=lambda: {C: [], E: []})
    holds: dict[TypeUrl, dict[str, str]] = field(default_factory=lambda: {C: {}, E: {}})
    last_nonce: int = 0

    def nonce_for(self, type_url: TypeUrl, choice: str) -> str:
        seen = self.seen[type_url]
        if choice == "latest" and seen:
            return seen[-1].nonce
        if choice == "older" and len(seen) > 1:
            return seen[0].nonce
        return "" if choice == "empty" else "garbage-99"

    def check_common(self, response: Response | DeltaResponse) -> None:
        assert int(response.nonce) > self.last_nonce, "nonces increase"
        self.last_nonce = int(response.nonce)
        assert all(r.type_url == response.type_url for r in response.resources)

    def push(self, snapshot: Snapshot) -> None:
        """The server got a new snapshot: take what it sends."""
        raise NotImplementedError

    def request_step(self, step: tuple[Any, ...]) -> None:
        """Send the request a generated `request` step describes."""
        raise NotImplementedError

    def read(self, count: int) -> None:
        raise NotImplementedError

    def answer(self, t: TypeUrl, *, nack: bool) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        raise NotImplementedError

    def drive(self, steps: list[tuple[Any, ...]], final: World, *, derived: bool) -> Snapshot:
        """Play the generated steps, then publish `final` (every name) and let the
        conversation go quiet; the last snapshot."""
        publisher = Publisher()
        for step in steps:
            if step[0] == "snapshot":
                self.push(publisher.publish(step[1], derived=step[2]))
            elif step[0] == "read":
                self.read(step[1])
            elif step[0] == "answer":
                self.answer(step[1], nack=step[2])
            else:
                self.request_step(step)
        everything = {t: {n: final[t].get(n, 0) for n in NAMES} for t in (C, E)}
        last = publisher.publish(everything, derived=derived, tag="-final")
        self.push(last)
        self.settle()
        return last


@dataclass
class SotwModel(ModelBase):
    """A SotW client; `sub` is the protocol's reading of its requests (the oracle)."""

    state: StreamState = field(default_factory=StreamState)
    sub: dict[TypeUrl, Sub] = field(default_factory=dict)
    legacy: dict[TypeUrl, bool] = field(default_factory=dict)
    asked: dict[TypeUrl, tuple[str, ...]] = field(default_factory=dict)
    nacked: dict[TypeUrl, str] = field(default_factory=dict)

    def oracle(self, type_url: TypeUrl, names: tuple[str, ...]) -> Sub:
        first = type_url not in self.sub
        if type_url is C:
            if WILDCARD in names:
                self.legacy[C] = False
                return None
            if not names:
                self.legacy[C] = self.legacy.get(C, False) or first
                return None if self.legacy[C] else frozenset()
            self.legacy[C] = False
        return frozenset(names)

    def emit(self, responses: tuple[Response, ...], *, pushed: bool) -> None:
        cds_before = False
        for r in responses:
            self.check_common(r)
            assert r.version_info
            sub = self.sub.get(TypeUrl(r.type_url))
            assert sub is None or {x.name for x in r.resources} <= sub, "pushed unasked"
            warming = r.type_url is E and cds_before  # EDS follows every CDS push
            if pushed and not warming:
                assert r.version_info != self.nacked.get(TypeUrl(r.type_url)), "NACKed re-sent"
            cds_before = cds_before or r.type_url is C
            self.inflight.append(r)

    def read(self, count: int) -> None:
        for r in self.inflight[:count]:
            t = TypeUrl(r.type_url)
            self.seen[t].append(Seen(r.nonce, r.version_info, dict(self.holds[t])))
            got = {x.name: x.version for x in r.resources if self.wants(t, x.name)}
            self.holds[t] = got if t is C else {**self.holds[t], **got}
        del self.inflight[:count]

    def wants(self, type_url: TypeUrl, name: str) -> bool:
        sub = self.sub.get(type_url, frozenset())
        return sub is None or name in sub

    def push(self, snapshot: Snapshot) -> None:
        self.emit(self.state.on_snapshot(snapshot), pushed=True)

    def request_step(self, step: tuple[Any, ...]) -> None:
        _, t, names, _, choice, nack = step
        self.request(t, names, choice, nack=nack)

    def request(self, t: TypeUrl, names: tuple[str, ...], choice: str, *, nack: bool) -> None:
        nonce = self.nonce_for(t, choice)
        seen = self.seen[t]
        version = seen[-1].version if seen else ""
        before = self.sub.get(t, frozenset())
        self.sub[t] = self.oracle(t, names)
        self.asked[t] = names
        self.holds[t] = {n: v for n, v in self.holds[t].items() if self.wants(t, n)}
        error = "rejected" if nack and nonce else None
        outcome = self.state.on_request(Request(t, version, nonce, names, error))
        assert self.state.state(t).names == self.sub[t], "subscription as the protocol says"
        if outcome.answer.kind is RequestKind.NACK:
            self.nacked[t] = seen[-1].version
            if nonce == seen[-1].nonce:  # the client keeps what it held before
                self.holds[t] = {n: v for n, v in seen[-1].before.items() if self.wants(t, n)}
        self.emit(outcome.responses, pushed=False)
        pool = set(self.state.snapshot.resources[t]) if self.state.snapshot else set()
        added = pool - _set(before, pool) & _set(self.sub[t], pool)
        answered = {x.name for r in outcome.responses if r.type_url is t for x in r.resources}
        assert added <= answered, "a (re)subscribed resource that exists is answered at once"

    def answer(self, t: TypeUrl, *, nack: bool) -> None:
        self.read(len(self.inflight))
        if t in self.asked:
            self.request(t, self.asked[t], "latest", nack=nack)

    def settle(self) -> None:
        for _ in range(20):
            self.read(len(self.inflight))
            for t, names in self.asked.items():
                self.request(t, names, "latest", nack=False)
            if not self.inflight:
                return
        raise AssertionError("the conversation never went quiet")

    def expected(self, snapshot: Snapshot, t: TypeUrl) -> dict[str, str]:
        pool = snapshot.resources[t]
        return {n: r.version for n, r in pool.items() if t in self.sub and self.wants(t, n)}


@settings(max_examples=300, deadline=None)
@given(_steps, _worlds, st.booleans())
def test_sotw_invariants_hold_for_any_conversation(
    steps: list[tuple[Any, ...]], final: World, derived: bool
) -> None:
    """Any mix of (un)subscriptions, ACKs, NACKs, stale and garbage nonces, late reads and
    snapshots keeps every SotW invariant; a fresh snapshot then reaches the client exactly."""
    model = SotwModel()
    last = model.drive(steps, final, derived=derived)
    for t in (C, E):
        held = {n: v for n, v in model.holds[t].items() if n in last.resources[t]}
        assert held == model.expected(last, t), t


@dataclass
class DeltaModel(ModelBase):
    """A delta client; `wildcard` and `explicit` are the protocol's reading of its requests."""

    state: DeltaStreamState = field(default_factory=DeltaStreamState)
    started: set[TypeUrl] = field(default_factory=set)
    wildcard: dict[TypeUrl, bool] = field(default_factory=dict)
    explicit: dict[TypeUrl, set[str]] = field(default_factory=lambda: {C: set(), E: set()})
    rejected: dict[tuple[TypeUrl, str], str] = field(default_factory=dict)
    by_nonce: dict[str, DeltaResponse] = field(default_factory=dict)

    def wants(self, t: TypeUrl, name: str) -> bool:
        return t in self.started and (self.wildcard.get(t, False) or name in self.explicit[t])

    def emit(self, responses: tuple[DeltaResponse, ...]) -> None:
        for r in responses:
            self.check_common(r)
            t = TypeUrl(r.type_url)
            for x in r.resources:
                assert self.wants(t, x.name), "pushed unasked"
                assert self.rejected.get((t, x.name)) != x.version, "rejected version re-sent"
            self.by_nonce[r.nonce] = r
            self.inflight.append(r)

    def read(self, count: int) -> None:
        for r in self.inflight[:count]:
            t = TypeUrl(r.type_url)
            self.seen[t].append(Seen(r.nonce, "", dict(self.holds[t])))
            for name in r.removed:
                self.holds[t].pop(name, None)
            self.holds[t].update((x.name, x.version) for x in r.resources if self.wants(t, x.name))
        del self.inflight[:count]

    def subscribe(self, t: TypeUrl, subscribe: tuple[str, ...], drop: tuple[str, ...]) -> None:
        if t not in self.started:
            self.started.add(t)
            self.wildcard[t] = t is C and not subscribe
        for name in subscribe:
            if name == WILDCARD and t is C:
                self.wildcard[t] = True
            else:
                self.explicit[t].add(name)
        for name in drop:
            if name == WILDCARD and t is C:
                self.wildcard[t] = False
            else:
                self.explicit[t].discard(name)
        for key in [k for k in self.rejected if k[0] is t and not self.wants(t, k[1])]:
            del self.rejected[key]  # unsubscribed: the client forgot it
        self.holds[t] = {n: v for n, v in self.holds[t].items() if self.wants(t, n)}

    def push(self, snapshot: Snapshot) -> None:
        self.emit(self.state.on_snapshot(snapshot))

    def request_step(self, step: tuple[Any, ...]) -> None:
        _, t, subscribe, drop, choice, nack = step
        self.request(t, subscribe, drop, choice, nack=nack)

    def request(
        self, t: TypeUrl, subscribe: tuple[str, ...], drop: tuple[str, ...], choice: str, *,
        nack: bool,
    ) -> None:  # fmt: skip
        nonce = self.nonce_for(t, choice)
        pool = set(self.state.snapshot.resources[t]) if self.state.snapshot else set()
        before = {n for n in pool if self.wants(t, n)}
        wanted = {n for n in NAMES if self.wants(t, n)}  # what a NACK here can reject
        self.subscribe(t, subscribe, drop)
        error = "rejected" if nack and nonce else None
        outcome = self.state.on_request(DeltaRequest(t, subscribe, drop, {}, nonce, error))
        want: Sub = None if self.wildcard[t] else frozenset(self.explicit[t])
        assert self.state.state(t).names == want, "subscription as the protocol says"
        if outcome.answer.kind is RequestKind.NACK:
            self.nack(t, nonce, wanted)
        self.emit(outcome.responses)
        added = {n for n in pool if self.wants(t, n)} - before
        answered = {x.name for r in outcome.responses if r.type_url is t for x in r.resources}
        assert added <= answered, "a (re)subscribed resource that exists is answered at once"

    def nack(self, t: TypeUrl, nonce: str, wanted: set[str]) -> None:
        """The server rejects what the NACKed response sent of names wanted when NACKed
        (and still wanted after the request's own unsubscriptions)."""
        (seen,) = [s for s in self.seen[t] if s.nonce == nonce]
        for x in self.by_nonce[nonce].resources:
            if x.name in wanted and self.wants(t, x.name) and x.version != seen.before.get(x.name):
                self.rejected[(t, x.name)] = x.version
        if nonce == self.seen[t][-1].nonce:  # the client keeps what it held before
            self.holds[t] = {n: v for n, v in seen.before.items() if self.wants(t, n)}

    def answer(self, t: TypeUrl, *, nack: bool) -> None:
        self.read(len(self.inflight))
        if t in self.started:
            self.request(t, (), (), "latest", nack=nack)

    def settle(self) -> None:
        for _ in range(20):
            self.read(len(self.inflight))
            for t in sorted(self.started):
                self.request(t, (), (), "latest", nack=False)
            if not self.inflight:
                return
        raise AssertionError("the conversation never went quiet")


@settings(max_examples=300, deadline=None)
@given(_steps, _worlds, st.booleans())
def test_delta_invariants_hold_for_any_conversation(
    steps: list[tuple[Any, ...]], final: World, derived: bool
) -> None:
    """The same conversations over delta: every invariant on every response, and a fresh
    snapshot then leaves the client holding exactly what it subscribes to (removals told)."""
    model = DeltaModel()
    last = model.drive(steps, final, derived=derived)
    for t in (C, E):
        expected = {n: r.version for n, r in last.resources[t].items() if model.wants(t, n)}
        assert model.holds[t] == expected, t
