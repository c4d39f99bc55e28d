"""Derived snapshots (`Snapshot.updated`) and the change-list path of `StreamState`.

A client driven by change lists must end up with exactly what a client given each whole
snapshot would have, with the same versions; the translator's incremental snapshots must
equal a one-shot translation of the same services.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.cache import FULL_STATE, Resource, Snapshot, TypeUrl
from xdscp.model import BalancingPolicy, ClientKind, Endpoint, LbPolicy, Service
from xdscp.server.protocol import Request, Response, StreamState
from xdscp.translate import translate, translator_for

C, E, L, R = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
NAMES = [f"s{i}" for i in range(6)]


class Client:
    """Applies responses as the protocol says: CDS/LDS replace, EDS/RDS update by name."""

    def __init__(self, eds_names: tuple[str, ...]) -> None:
        self.state = StreamState()
        self.view: dict[TypeUrl, dict[str, str]] = {t: {} for t in TypeUrl}
        self.eds_names = eds_names

    def apply(self, responses: tuple[Response, ...]) -> None:
        for response in responses:
            got = {r.name: r.version for r in response.resources}
            if response.type_url in FULL_STATE:
                self.view[response.type_url] = got
            else:
                self.view[response.type_url].update(got)
            # Every request repeats the subscription (an ACK too): EDS and RDS by name.
            names = {E: self.eds_names, R: ("routes",)}.get(TypeUrl(response.type_url), ())
            request = Request(response.type_url, response.version_info, response.nonce, names)
            self.apply(self.state.on_request(request).responses)

    def subscribe(self) -> None:
        self.apply(self.state.on_request(Request(C)).responses)
        self.apply(self.state.on_request(Request(E, resource_names=self.eds_names)).responses)
        self.apply(self.state.on_request(Request(L)).responses)
        self.apply(self.state.on_request(Request(R, resource_names=("routes",))).responses)

    def seen(self, type_url: TypeUrl) -> dict[str, str]:
        """What the client uses: EDS entries only for clusters it has."""
        view = self.view[type_url]
        if type_url is E:
            return {n: v for n, v in view.items() if n in self.view[C]}
        return view


def _resources(versions: dict[str, int]) -> list[Resource]:
    out = [Resource(C, n, b"cluster-" + n.encode()) for n in versions]
    out += [Resource(E, n, f"cla-{n}-{v}".encode()) for n, v in versions.items()]
    out += [Resource(L, "listener", b"l"), Resource(R, "routes", f"r{len(versions)}".encode())]
    return out


_worlds = st.lists(
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 3), max_size=6), min_size=1, max_size=8
)


@settings(max_examples=150, deadline=None)
@given(_worlds, st.lists(st.sampled_from(NAMES), max_size=6, unique=True))
def test_change_lists_give_what_whole_snapshots_give(
    worlds: list[dict[str, int]], eds_names: list[str]
) -> None:
    """After every change, the incremental client and the whole-snapshot client agree on
    every resource and version; the derived snapshot's versions equal a fresh build's."""
    names = tuple(eds_names)
    incremental, whole = Client(names), Client(names)
    current = Snapshot.of(_resources({}))
    for client in (incremental, whole):
        client.apply(client.state.on_snapshot(current))
        client.subscribe()
    previous: dict[str, int] = {}
    for world in worlds:
        removals = {t: [n for n in previous if n not in world] for t in (C, E)}
        derived = current.updated(_resources(world), removals)
        fresh = Snapshot.of(_resources(world))
        assert dict(derived.versions) == dict(fresh.versions)
        incremental.apply(incremental.state.on_snapshot(derived))
        whole.apply(whole.state.on_snapshot(fresh))
        for type_url in TypeUrl:
            assert incremental.seen(type_url) == whole.seen(type_url), type_url
            want = {n: r.version for n, r in fresh.resources[type_url].items()}
            if type_url is E:  # EDS has no wildcard: no names, nothing
                want = {n: v for n, v in want.items() if n in names}
            assert incremental.seen(type_url) == want, type_url
            mine, theirs = incremental.state.state(type_url), whole.state.state(type_url)
            assert mine.sent_version == theirs.sent_version == mine.acked_version
        current, previous = derived, world


def _service(name: str, weights: tuple[int, ...], lb: LbPolicy) -> Service:
    endpoints = tuple(Endpoint(f"10.0.0.{i + 1}", 80, weight=w) for i, w in enumerate(weights))
    return Service(name, endpoints, BalancingPolicy(lb=lb))


_services = st.dictionaries(
    st.sampled_from(NAMES),
    st.tuples(
        st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
        st.sampled_from([LbPolicy.ROUND_ROBIN, LbPolicy.MAGLEV, LbPolicy.RING_HASH]),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_services, min_size=1, max_size=6), st.sampled_from(list(ClientKind)))
def test_incremental_translation_equals_one_shot(
    steps: list[dict[str, tuple[tuple[int, ...], LbPolicy]]], kind: ClientKind
) -> None:
    """Translating a sequence of service sets incrementally gives, at every step, the very
    snapshot a fresh translator gives for that step's set."""
    translator = translator_for(kind)
    kept: dict[str, Service] = {}
    for step in steps:
        services = {}
        for name, (weights, lb) in step.items():
            candidate = _service(name, weights, lb)
            old = kept.get(name)
            services[name] = old if old == candidate else candidate  # sources keep identity
        kept = services
        got = translator.translate(services).snapshot
        want = translate(services, client=kind).snapshot
        assert dict(got.versions) == dict(want.versions)
        for type_url in TypeUrl:
            assert set(got.resources[type_url]) == set(want.resources[type_url])
