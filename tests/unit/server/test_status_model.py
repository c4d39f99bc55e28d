"""The per-node status model: per-resource client status (REQUESTED / ACKED / NACKED /
DOES_NOT_EXIST), versions, error state and a bounded NACK history, for both stream kinds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.server.recorded import Recorded
from xdscp.cache import Resource, Snapshot, TypeUrl, content_version
from xdscp.model import ClientKind
from xdscp.server.delta import DeltaRequest, DeltaStreamState
from xdscp.server.nodes import NodeInfo
from xdscp.server.protocol import Request, StreamState
from xdscp.server.rules import RequestKind
from xdscp.server.status import (
    NACK_HISTORY,
    ClientStatus,
    ConfigStatus,
    StatusBoard,
    StreamRecord,
)
from xdscp.testing import cluster_snapshot

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT


def snap(world: dict[str, int]) -> Snapshot:
    """Clusters and their CLAs; the number is a resource's content (its version)."""
    return cluster_snapshot(
        {n: b"c%d" % v for n, v in world.items()}, {n: b"e%d" % v for n, v in world.items()}
    )


def stream(delta: bool, snapshot: Snapshot | None) -> tuple[Any, StreamRecord, Recorded]:
    """A stream state and its status record, which is told the state's events only."""
    state: Any = (DeltaStreamState if delta else StreamState)(snapshot=snapshot)
    record = StreamRecord(NodeInfo("n1"), "ADS", "envoy", snapshot, delta=delta)
    return state, record, Recorded(state, record)


class Driver:
    """Drives a record's stream like a client that answers each response in order."""

    def __init__(self, delta: bool, snapshot: Snapshot | None) -> None:
        self.delta, self.clock = delta, 1000.0
        self.state, self.rec, self.fed = stream(delta, snapshot)
        self.outstanding: list[Any] = []  # responses not answered yet, oldest first
        self.holds: dict[str, dict[str, str]] = {C: {}, E: {}}  # what the client runs
        self.subscribed: dict[str, set[str] | None] = {}
        self.nacks = 0
        self.stale = 0  # answers the server cannot attribute (see the property test)

    def _sent(self, responses: Any) -> None:
        self.outstanding.extend(responses)

    def _request(self, request: Any) -> Any:
        self.clock += 1
        return self.fed.request(request, self.clock)

    def subscribe(self, type_url: str, names: tuple[str, ...]) -> None:
        state = self.state
        if self.delta:
            old = self.subscribed.get(type_url) or set()
            outcome = self._request(DeltaRequest(type_url, names, tuple(old - set(names))))
        else:
            ts = state.state(TypeUrl(type_url))
            outcome = self._request(Request(type_url, "", ts.sent_nonce, names))
        if any(r.type_url == type_url for r in self.outstanding):
            self.stale += 1  # an unsubscribed name may come back with a response in flight
        self.subscribed[type_url] = set(names) if names or type_url == E else None
        for name in [n for n in self.holds[type_url] if not self._wants(type_url, n)]:
            del self.holds[type_url][name]
        self._sent(outcome.responses)

    def _wants(self, type_url: str, name: str) -> bool:
        names = self.subscribed.get(type_url)
        return names is None or name in names

    def push(self, snapshot: Snapshot) -> None:
        self.clock += 1
        self._sent(self.fed.snapshot(snapshot, self.clock))

    def answer(self, accept: bool | None = None) -> None:
        """Answer the oldest response; by default NACK it iff it holds content 3 (a
        client rejects the same bytes every time)."""
        response = self.outstanding.pop(0)
        if accept is None:
            accept = not any(r.any_bytes[1:] == b"3" for r in response.resources)
        error = None if accept else "bad config: test"
        if self.delta:
            request = DeltaRequest(
                response.type_url, response_nonce=response.nonce, error_message=error
            )
        else:
            names = tuple(sorted(self.subscribed.get(response.type_url) or ()))
            request = Request(response.type_url, "", response.nonce, names, error)
        outcome = self._request(request)
        if outcome.answer.kind in {RequestKind.ACK, RequestKind.RESUBSCRIBE, RequestKind.NACK}:
            assert outcome.answer.nonce == response.nonce  # the event names what it answers
        self.nacks += outcome.answer.kind is RequestKind.NACK
        self.stale += outcome.answer.kind is RequestKind.STALE
        self._sent(outcome.responses)
        if accept:
            self._apply(response)

    def _apply(self, response: Any) -> None:
        held = self.holds[response.type_url]
        if not self.delta and response.type_url == C:
            held.clear()
        for resource in response.resources:  # a name unsubscribed meanwhile is ignored
            if self._wants(response.type_url, resource.name):
                held[resource.name] = resource.version
        for name in getattr(response, "removed", ()):
            held.pop(name, None)


def statuses(rec: StreamRecord) -> dict[tuple[str, str], Any]:
    return {(str(r.type_url), r.name): r for r in rec.resources()}


def test_acked_requested_does_not_exist_and_nacked_with_error_state() -> None:
    """SotW: an ACKed cluster, a CLA in flight, a name the snapshot lacks, then a NACK."""
    d = Driver(False, snap({"a": 1}))
    d.subscribe(C, ())
    d.answer(True)
    d.subscribe(E, ("a", "ghost"))
    (cla,) = d.outstanding
    by = statuses(d.rec)
    assert by[(C, "a")].client_status is ClientStatus.ACKED
    assert by[(C, "a")].config_status is ConfigStatus.SYNCED
    assert by[(C, "a")].version == content_version(b"c1")
    assert by[(C, "a")].resource == Resource(C, "a", b"c1").any_bytes
    assert by[(E, "a")].client_status is ClientStatus.REQUESTED  # sent, not answered yet
    assert (by[(E, "a")].config_status, by[(E, "a")].sent_version) == (
        ConfigStatus.STALE, cla.resources[0].version,
    )  # fmt: skip
    assert by[(E, "ghost")].client_status is ClientStatus.DOES_NOT_EXIST
    d.answer(True)
    d.push(snap({"a": 2}))
    d.answer(False)  # the new cluster is rejected
    by = statuses(d.rec)
    nacked = by[(C, "a")]
    assert nacked.client_status is ClientStatus.NACKED
    assert nacked.config_status is ConfigStatus.ERROR
    assert nacked.version == content_version(b"c1")  # still runs the old one
    assert nacked.sent_version == content_version(b"c2")
    assert nacked.resource is None  # the snapshot no longer has the version it runs
    assert nacked.error is not None
    assert nacked.error.error == "bad config: test"
    assert nacked.error.version == d.state.state(C).nacked_version
    assert nacked.last_updated == nacked.error.at
    (entry,) = d.rec.as_json()["nacks"]
    assert entry["type"] == "Cluster"
    assert entry["error"] == "bad config: test"


def test_delta_nack_and_does_not_exist() -> None:
    """Delta: an absent name is DOES_NOT_EXIST; a NACKed version is NACKED until a newer
    version is accepted."""
    d = Driver(True, snap({"a": 1}))
    d.subscribe(C, ())
    d.answer(True)
    d.subscribe(E, ("a", "ghost"))
    d.answer(True)
    by = statuses(d.rec)
    assert by[(E, "a")].client_status is ClientStatus.ACKED
    assert by[(E, "ghost")].client_status is ClientStatus.DOES_NOT_EXIST
    d.push(snap({"a": 2}))
    d.answer(False)
    assert statuses(d.rec)[(C, "a")].client_status is ClientStatus.NACKED
    while d.outstanding:
        d.answer(True)
    d.push(snap({"a": 3}))
    while d.outstanding:
        d.answer(True)
    fixed = statuses(d.rec)[(C, "a")]
    assert (fixed.client_status, fixed.version) == (ClientStatus.ACKED, content_version(b"c3"))


def test_history_is_bounded_and_board_merges_nodes() -> None:
    """Past NACK_HISTORY NACKs the oldest go; the board lists them per node, oldest first."""
    d = Driver(False, snap({"a": 0}))
    d.subscribe(C, ())
    for version in range(1, NACK_HISTORY + 5):
        d.answer(False)
        d.push(snap({"a": version}))
    assert d.nacks == NACK_HISTORY + 4
    board = StatusBoard()
    board.add(d.rec)
    history = board.nack_history("n1")
    assert len(history) == NACK_HISTORY
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert board.nack_history("other") == []
    assert list(board.by_node()) == ["n1"]


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("answer"), st.none()),
        st.tuples(st.just("push"), st.dictionaries(st.sampled_from("abc"), st.integers(0, 3))),
        st.tuples(st.just("names"), st.frozensets(st.sampled_from("abcz"), max_size=3)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(delta=st.booleans(), actions=ACTIONS)
def test_any_conversation_keeps_history_bounded_and_statuses_true(
    delta: bool, actions: list[tuple[str, Any]]
) -> None:
    """Whatever the requests and responses (a client that rejects content 3): the
    history never exceeds NACK_HISTORY and holds the latest NACKs; once every response
    has been answered, each ACKED or NACKED resource's version is the one the client
    runs, each subscribed name the client runs is reported at that version, and a
    subscribed name the snapshot lacks and the client does not run is DOES_NOT_EXIST."""
    d = Driver(delta, snap({"a": 0}))
    d.subscribe(C, ())
    d.subscribe(E, ("a",))
    world: dict[str, int] = {"a": 0}
    for action, arg in actions:
        if action == "answer" and d.outstanding:
            d.answer(arg)
        elif action == "push":
            world = arg
            d.push(snap(world))
        elif action == "names":
            d.subscribe(E, tuple(sorted(arg)))
        assert len(d.rec.nacks) == min(d.nacks, NACK_HISTORY)
    while d.outstanding:
        d.answer()
    if d.stale:
        # SotW: an answer to a response older than the latest of its type cannot be
        # attributed (its version is a digest), nor, in either kind, a response that
        # carried a name unsubscribed and subscribed again meanwhile: what the client
        # accepted is confirmed by the next ACK. Only the statuses' kinds are checked.
        assert all(isinstance(r.client_status, ClientStatus) for r in d.rec.resources())
        return
    for (type_url, name), status in statuses(d.rec).items():
        runs = d.holds[type_url].get(name)
        if status.client_status in {ClientStatus.ACKED, ClientStatus.NACKED}:
            assert status.version == (runs or ""), (type_url, name, status)
        elif status.client_status is ClientStatus.DOES_NOT_EXIST:
            assert name not in world
    found = statuses(d.rec)
    for type_url, held in d.holds.items():
        for name, version in held.items():
            if name in world and d._wants(type_url, name):
                assert found[(type_url, name)].version == version


def test_the_board_knows_each_connected_nodes_client_kind() -> None:
    """What the load book asks to tell whose prediction a node's load reports meet."""
    board = StatusBoard()
    grpc = board.add(StreamRecord(NodeInfo("g", user_agent="gRPC Python"), "ADS", "grpc"))
    board.add(StreamRecord(NodeInfo("e", user_agent="envoy"), "ADS", "envoy"))
    assert board.kind_of("g") is ClientKind.GRPC
    assert board.kind_of("e") is ClientKind.ENVOY
    assert board.kind_of("nobody") is None
    board.remove(grpc)
    assert board.kind_of("g") is None
