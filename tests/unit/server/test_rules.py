"""The rules both stream states share (`xdscp.server.rules`), and the face the server drives."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cache import TYPE_ORDER, Resource, Snapshot, SnapshotCache, TypeUrl
from xdscp.errors import InvalidRequestError
from xdscp.server import DeltaStreamState, SnapshotFeed, StreamProtocol, StreamState
from xdscp.server.rules import eds_after_cds, push_order, served_type
from xdscp.server.wire import decode_delta_request, decode_request

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT


@given(st.lists(st.sampled_from(list(TypeUrl))))
def test_a_push_visits_each_type_once_in_order_with_eds_always_among_them(
    types: list[TypeUrl],
) -> None:
    """Whatever types a push starts from, it visits each once, in the order a client must
    receive them, EDS included (after CDS) so it can follow a CDS push."""
    order = push_order(types)
    assert set(order) == {*types, E}
    assert order == sorted(order, key=TYPE_ORDER.__getitem__)
    assert C not in order or order.index(C) < order.index(E)


@pytest.mark.parametrize(("type_url", "cds_sent", "due"), [(E, True, True), (E, False, False),
                                                           (C, True, False)])  # fmt: skip
def test_eds_is_due_only_after_a_cds_push(type_url: TypeUrl, cds_sent: bool, due: bool) -> None:
    """EDS must follow when the push sent CDS; no other type is forced by it."""
    assert eds_after_cds(type_url, cds_sent=cds_sent) is due


def test_served_type_names_the_single_type_of_a_per_type_service_and_requires_one_on_ads() -> None:
    """An empty type URL means a per-type service's type; on ADS it is invalid; an unknown
    or unserved type is not served."""
    assert served_type("", frozenset({E})) is E
    with pytest.raises(InvalidRequestError):
        served_type("", frozenset(TypeUrl))
    assert served_type("type.googleapis.com/unknown", frozenset(TypeUrl)) is None
    assert served_type(str(C), frozenset({E})) is None


def _drive(state: StreamProtocol[Any, Any], request: Any, snapshot: Snapshot) -> list[str]:
    """What the servicer does with either variant: on_request, on_snapshot."""
    outcome = state.on_request(request)
    later = state.on_snapshot(snapshot)
    return [str(outcome.answer.kind), *(r.type_url for r in (*outcome.responses, *later))]


def test_both_stream_states_are_driven_through_the_one_face() -> None:
    """SotW and delta states take their decoded wire request and answer through
    `StreamProtocol`; a NACK's error detail is decoded as its error message."""
    first = Snapshot.of([Resource(C, "a", b"1")])
    second = Snapshot.of([Resource(C, "a", b"2")])
    sotw = decode_request(discovery_pb2.DiscoveryRequest(type_url=str(C)))
    delta = decode_delta_request(discovery_pb2.DeltaDiscoveryRequest(type_url=str(C)))
    assert _drive(StreamState(snapshot=first), sotw, second) == ["initial", str(C), str(C)]
    assert _drive(DeltaStreamState(snapshot=first), delta, second) == ["initial", str(C), str(C)]
    nack = discovery_pb2.DiscoveryRequest(
        type_url=str(C), error_detail=status_pb2.Status(message="bad")
    )
    assert decode_request(nack).error_message == "bad"
    assert delta.error_message is None


def test_the_snapshot_cache_is_a_snapshot_source() -> None:
    """The server needs only `get` and `watch` of the cache: `SnapshotCache` provides them."""
    concrete = SnapshotCache()
    cache: SnapshotFeed = concrete
    seen: list[Snapshot] = []
    stop = cache.watch("envoy", seen.append)
    assert cache.get("envoy") is None
    snapshot = Snapshot.of([Resource(C, "a", b"1")])
    concrete.set("envoy", snapshot)
    stop()
    assert seen == [snapshot]
    assert cache.get("envoy") is snapshot
