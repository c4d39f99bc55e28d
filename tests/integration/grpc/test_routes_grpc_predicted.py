"""The reference balancer's route matching (`xdscp.balancer.routing`) against proxyless gRPC
clients: for header values at the edges (a range value with a sign, out of int64, not an
integer; an empty value; case), each RPC reaches the service of the route predicted for it."""

from __future__ import annotations

import pytest

from tests.harness.grpc_clients import ClientStarter, in_sync
from tests.harness.plane import Plane
from xdscp.balancer import first_match
from xdscp.demo.backend import Backend
from xdscp.model import Endpoint, RouteTable, Service
from xdscp.translate.routes import served_routes

pytestmark = pytest.mark.grpc
WHO = "/xdscp.demo.Echo/Who"
# Neighbouring routes go to different services, so a route mistaken for the next shows.
ROUTES = [
    {"match": {"headers": [{"name": "x-u", "range": [10, 20]}]}, "cluster": "web-v2"},
    {"match": {"headers": [{"name": "x-u", "regex": "a.*"}]}, "cluster": "web"},
    {"match": {"headers": [{"name": "x-u", "suffix": "ice"}]}, "cluster": "web-v2"},
    {"match": {"headers": [{"name": "x-u", "exact": ""}]}, "cluster": "web"},
    {"match": {"headers": [{"name": "x-u", "prefix": "b", "invert": True}]}, "cluster": "web-v2"},
]  # fmt: skip
VALUES = [
    "15", "+15", "-3", "10", "20", "9223372036854775808", "12a", "abc", "alice", "Alice",
    "ALICE", "bob", "b", "", "x", "bice",
]  # fmt: skip


def _world(backends: list[Backend]) -> dict[str, Service]:
    ends = [Endpoint("127.0.0.1", b.grpc_port) for b in backends]
    table = RouteTable.from_list(ROUTES)
    return {
        "web": Service("web", tuple(ends[:2]), routes=table),
        "web-v2": Service("web-v2", tuple(ends[2:4])),
    }


def _service_of(backend: str) -> str:
    return {"b0": "web", "b1": "web", "b2": "web-v2", "b3": "web-v2"}.get(backend, "none")


async def _check(
    plane: Plane, backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    world = _world(backends)
    plane.source.set(world)
    client = await grpc_client(kind)
    await in_sync(plane, client.node_id)
    routes = served_routes(world["web"], world)
    predicted = []
    for value in VALUES:
        index = first_match(routes, WHO, {"x-u": value})
        assert index is not None
        predicted.append(routes[index].targets[0])
    answer = await client.call(header="x-u", keys=VALUES)
    assert not answer["errors"], answer["errors"][:3]
    seen = [_service_of(name) for name in answer["picks"]]
    wrong = [(v, p, s) for v, p, s in zip(VALUES, predicted, seen, strict=True) if p != s]
    assert wrong == [], wrong
    assert set(predicted) == {"web", "web-v2"}
    entry = await in_sync(plane, client.node_id)
    assert not entry.get("last_nack")


async def test_grpcio_takes_the_predicted_route(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio: each value's RPC reaches the predicted route's service."""
    await _check(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_takes_the_predicted_route(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go: the same."""
    await _check(plane, grpc_backends, grpc_client, "go")
