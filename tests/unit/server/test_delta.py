"""The delta xDS conversation rules, as table tests and one property test."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server.delta import DeltaRequest, DeltaResponse, DeltaStreamState
from xdscp.server.rules import RequestKind
from xdscp.testing import cluster_snapshot

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT


def names(response: DeltaResponse) -> list[str]:
    return [r.name for r in response.resources]


def ack(state: DeltaStreamState, response: DeltaResponse) -> tuple[DeltaResponse, ...]:
    return state.on_request(
        DeltaRequest(response.type_url, response_nonce=response.nonce)
    ).responses


def test_wildcard_then_names_then_ack_is_in_sync() -> None:
    """CDS with no names is a wildcard: every cluster; EDS by name; ACKs bring both in sync."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"1", "b": b"1"}))
    outcome = state.on_request(DeltaRequest(C))
    assert outcome.answer.kind is RequestKind.INITIAL
    (cds,) = outcome.responses
    assert names(cds) == ["a", "b"]
    assert state.state(C).names is None
    (eds,) = state.on_request(DeltaRequest(E, subscribe=("a",))).responses
    assert names(eds) == ["a"]
    assert ack(state, cds) == ack(state, eds) == ()
    for type_url in (C, E):
        ts = state.state(type_url)
        assert ts.sent_version == ts.acked_version


def test_absent_name_is_answered_as_removed_and_known_versions_are_not_resent() -> None:
    """A name that does not exist comes back in `removed`; a reconnecting client's
    initial_resource_versions are taken as held: only what differs is sent."""
    world = cluster_snapshot({"a": b"1", "b": b"1"})
    state = DeltaStreamState(snapshot=world)
    held = {"a": world.resources[E]["a"].version, "b": "stale"}
    state.on_request(DeltaRequest(C))
    (eds,) = state.on_request(
        DeltaRequest(E, subscribe=("a", "b", "zz"), initial_versions=held)
    ).responses
    assert names(eds) == ["b"]
    assert eds.removed == ("zz",)


def test_a_reconnecting_wildcard_client_is_told_what_it_holds_that_is_gone() -> None:
    """initial_resource_versions of a resource that no longer exists come back as removed."""
    world = cluster_snapshot({"a": b"1"})
    state = DeltaStreamState(snapshot=world)
    held = {"a": world.resources[C]["a"].version, "old": "v0"}
    (cds,) = state.on_request(DeltaRequest(C, initial_versions=held)).responses
    assert (names(cds), cds.removed) == ([], ("old",))


def test_only_changes_are_sent_and_removals_are_named() -> None:
    """A changed CLA is sent alone; a removed cluster is named in `removed` for CDS and EDS."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"1", "b": b"1"}))
    for response in state.on_request(DeltaRequest(C)).responses:
        ack(state, response)
    for response in state.on_request(DeltaRequest(E, subscribe=("a", "b"))).responses:
        ack(state, response)
    base = state.snapshot
    assert base is not None
    changed = base.updated([Resource(E, "a", b"cla-new")], {})
    (eds,) = state.on_snapshot(changed)
    assert (names(eds), eds.removed) == (["a"], ())
    gone = changed.updated([], {C: ["b"], E: ["b"]})
    cds, eds = state.on_snapshot(gone)
    assert (cds.type_url, cds.removed, eds.removed) == (C, ("b",), ("b",))


def test_changed_cluster_is_followed_by_its_unchanged_cla() -> None:
    """Warming: a Cluster sent again is followed by its ClusterLoadAssignment."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"1"}))
    state.on_request(DeltaRequest(C))
    state.on_request(DeltaRequest(E, subscribe=("a",)))
    base = state.snapshot
    assert base is not None
    cds, eds = state.on_snapshot(base.updated([Resource(C, "a", b"2")], {}))
    assert (names(cds), names(eds)) == (["a"], ["a"])


def test_nack_restores_what_was_held_and_never_resends_the_rejected_version() -> None:
    """A NACK: the client keeps its last accepted cluster; the rejected version is not sent
    again (even on a full re-sync); status shows it; a newer version is sent; going back to
    the held version needs no response and shows the stream in sync again."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"good"}))
    (first,) = [r for r in state.on_request(DeltaRequest(C)).responses if r.type_url is C]
    ack(state, first)
    base = state.snapshot
    assert base is not None
    bad = base.updated([Resource(C, "a", b"bad")], {})
    (cds,) = state.on_snapshot(bad)
    outcome = state.on_request(DeltaRequest(C, response_nonce=cds.nonce, error_message="no"))
    ts = state.state(C)
    assert outcome.answer.kind is RequestKind.NACK
    assert ts.held["a"] == first.resources[0].version
    assert ts.sent_version != ts.acked_version
    assert state.on_snapshot(Snapshot.of(bad.resources[C].values())) == ()
    newer = bad.updated([Resource(C, "a", b"newer")], {})
    (cds,) = state.on_snapshot(newer)
    assert names(cds) == ["a"]
    ack(state, cds)
    back = newer.updated([Resource(C, "a", b"good")], {})
    (cds,) = state.on_snapshot(back)
    ack(state, cds)
    assert ts.sent_version == ts.acked_version


def test_unsubscribed_names_are_forgotten() -> None:
    """After an unsubscribe, changes to that resource are not sent."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"1", "b": b"1"}))
    state.on_request(DeltaRequest(E, subscribe=("a", "b")))
    state.on_request(DeltaRequest(E, unsubscribe=("b",)))
    assert "b" not in state.state(E).held
    base = state.snapshot
    assert base is not None
    assert state.on_snapshot(base.updated([Resource(E, "b", b"x")], {})) == ()


_worlds = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 3), max_size=6),
    min_size=1,
    max_size=8,
)


def _resources(world: dict[str, int]) -> list[Resource]:
    return [Resource(C, n, b"c") for n in world] + [
        Resource(E, n, f"{n}{v}".encode()) for n, v in world.items()
    ]


class Client:
    """Holds what delta responses gave it, ACKs every one."""

    def __init__(self) -> None:
        self.state = DeltaStreamState()
        self.view: dict[TypeUrl, dict[str, str]] = {C: {}, E: {}}

    def apply(self, responses: tuple[DeltaResponse, ...]) -> None:
        for response in responses:
            for name in response.removed:
                self.view[response.type_url].pop(name, None)
            for resource in response.resources:
                self.view[response.type_url][resource.name] = resource.version
            self.apply(ack(self.state, response))


@settings(max_examples=150, deadline=None)
@given(_worlds, st.lists(st.sampled_from("abcdef"), max_size=6, unique=True))
def test_change_lists_and_whole_snapshots_leave_the_client_with_the_same(
    worlds: list[dict[str, int]], eds_names: list[str]
) -> None:
    """Driven by derived snapshots or by whole ones, the client ends up holding exactly the
    snapshot's resources for what it subscribed to, after every step."""
    incremental, whole = Client(), Client()
    current = Snapshot.of([])
    for client in (incremental, whole):
        client.apply(client.state.on_snapshot(current))
        client.apply(client.state.on_request(DeltaRequest(C)).responses)
        client.apply(client.state.on_request(DeltaRequest(E, subscribe=tuple(eds_names))).responses)
    previous: dict[str, int] = {}
    for world in worlds:
        removals = {t: [n for n in previous if n not in world] for t in (C, E)}
        derived = current.updated(_resources(world), removals)
        incremental.apply(incremental.state.on_snapshot(derived))
        whole.apply(whole.state.on_snapshot(Snapshot.of(_resources(world))))
        want_c = {n: r.version for n, r in derived.resources[C].items()}
        want_e = {
            n: r.version
            for n, r in derived.resources[E].items()
            if n in eds_names  # EDS has no wildcard: no names, nothing
        }
        for client in (incremental, whole):
            assert client.view == {C: want_c, E: want_e}
        current, previous = derived, world


def test_a_nack_does_not_put_back_names_the_client_unsubscribed() -> None:
    """Wildcard CDS; a snapshot removes a and b; the client unsubscribes `a` and `*`, then
    NACKs the removal: it keeps what it held before that response, but only of what it
    still subscribes to, so the stream takes it as holding neither a nor b."""
    world = cluster_snapshot({"a": b"1", "b": b"1"})
    state = DeltaStreamState(snapshot=world)
    (cds,) = [r for r in state.on_request(DeltaRequest(C)).responses if r.type_url is C]
    ack(state, cds)
    (removal,) = [r for r in state.on_snapshot(Snapshot.of([])) if r.type_url is C]
    assert sorted(removal.removed) == ["a", "b"]
    state.on_request(DeltaRequest(C, unsubscribe=("a", "*")))
    outcome = state.on_request(DeltaRequest(C, response_nonce=removal.nonce, error_message="no"))
    assert outcome.answer.kind is RequestKind.NACK
    ts = state.state(C)
    assert (dict(ts.held), list(ts.client_view())) == ({}, [])
    assert ts.held_version == DeltaStreamState().state(C).held_version  # nothing held


def test_a_name_unsubscribed_and_subscribed_again_is_sent_after_a_nack_of_its_removal() -> None:
    """The client forgot a name it unsubscribed, so a NACK of an older response cannot make
    the stream take it as held again: when it comes back, a re-subscribed client gets it."""
    world = cluster_snapshot({"a": b"1"})
    state = DeltaStreamState(snapshot=world)
    (cds,) = [r for r in state.on_request(DeltaRequest(C)).responses if r.type_url is C]
    ack(state, cds)
    (removal,) = [r for r in state.on_snapshot(Snapshot.of([])) if r.type_url is C]
    state.on_request(DeltaRequest(C, unsubscribe=("*",)))
    state.on_request(DeltaRequest(C, subscribe=("*",)))  # a is gone: nothing to answer
    state.on_request(DeltaRequest(C, response_nonce=removal.nonce, error_message="no"))
    assert "a" not in state.state(C).held
    (again,) = [r for r in state.on_snapshot(world) if r.type_url is C]
    assert names(again) == ["a"]


def test_a_told_holding_folds_its_batches_and_still_says_what_the_client_holds() -> None:
    """Every `_FOLD` batches a type tells a new copy of what its client holds; what an event
    tells of it is what the state holds, before and after each copy."""
    state = DeltaStreamState(snapshot=cluster_snapshot({"a": b"0", "b": b"0", "c": b"0"}))
    state.on_request(DeltaRequest(C))
    (eds,) = state.on_request(DeltaRequest(E, subscribe=("a", "b", "c"))).responses
    ack(state, eds)
    folded = False
    for change in range(1, 20):
        bodies = {"a": str(change).encode(), "b": b"0", "c": b"0"} if change % 5 else {"b": b"1"}
        (*_, eds) = state.on_snapshot(cluster_snapshot(bodies))
        ack(state, eds)
        (held,) = [h for h in state.events() if h.type_url == E] or [state.state(E).holding(E)]
        folded = folded or len(held.held[0]) > 0
        ts = state.state(E)
        assert sorted(held.client_view()) == sorted(ts.client_view())
        assert len(held.log) < 8
    assert folded
