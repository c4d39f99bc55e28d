"""Routes through proxyless gRPC clients (grpcio and grpc-go): a 90/10 canary split within
5 sigma, a header routed to the second service exactly, a fault abort on one method at
100 %, every resource ACKed (no NACK on record)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.harness.grpc_clients import ClientStarter, in_sync
from tests.harness.plane import Plane
from tests.harness.routes import route_lists
from tests.harness.stats import assert_shares
from xdscp.demo.backend import Backend
from xdscp.model import Endpoint, RouteTable, Service

pytestmark = pytest.mark.grpc
N = 2000
ROUTES = [
    {"match": {"headers": [{"name": "x-canary", "exact": "always"}]}, "cluster": "web-v2"},
    {"match": {"grpc": {"service": "xdscp.demo.Echo", "method": "Who"},
               "headers": [{"name": "x-fault", "present": True}]},
     "cluster": "web", "fault": {"abort": {"grpc_status": 14, "percent": 100}}},
    {"split": {"web": 90, "web-v2": 10}},
]  # fmt: skip


def _world(backends: list[Backend]) -> dict[str, Service]:
    """`web` on b0, b1 (with the routes), `web-v2` on b2, b3: their gRPC ports."""
    ends = [Endpoint("127.0.0.1", b.grpc_port) for b in backends]
    return {
        "web": Service("web", tuple(ends[:2]), routes=RouteTable.from_list(ROUTES)),
        "web-v2": Service("web-v2", tuple(ends[2:4])),
    }


def _service_of(backend: str) -> str:
    return {"b0": "web", "b1": "web", "b2": "web-v2", "b3": "web-v2"}.get(backend, "none")


async def _check_routes(
    plane: Plane, backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    plane.source.set(_world(backends))
    client = await grpc_client(kind)
    await in_sync(plane, client.node_id)
    split = await client.call(n=N, within=120)
    assert not split["errors"], split["errors"][:3]
    counted = Counter(_service_of(name) for name in split["picks"])
    assert_shares(counted, {"web": 0.9, "web-v2": 0.1}, N, alternative={"web": 0.5, "web-v2": 0.5})
    header = await client.call(header="x-canary", keys=["always"] * 200)
    assert not header["errors"], header["errors"][:3]
    assert Counter(_service_of(name) for name in header["picks"]) == {"web-v2": 200}
    faults = await client.call(header="x-fault", keys=["on"] * 100)
    assert len(faults["errors"]) == 100, faults
    print(kind, "fault:", faults["errors"][0])
    assert all("unavailable" in e.lower() for e in faults["errors"]), faults["errors"][:3]
    entry = await in_sync(plane, client.node_id)
    assert not entry.get("last_nack")


async def test_grpcio_canary_header_and_fault(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio: web-v2 takes 10 % of 2000 RPCs within 5 sigma (50/50 ruled out); `x-canary:
    always` always reaches web-v2; `Who` with `x-fault` fails UNAVAILABLE every time; ACKed."""
    await _check_routes(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_canary_header_and_fault(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go: the same split, header route and fault, all ACKed."""
    await _check_routes(plane, grpc_backends, grpc_client, "go")


QUARTER = [
    {"match": {"headers": [{"name": "x-fault", "present": True}]}, "cluster": "web",
     "fault": {"abort": {"grpc_status": 14, "percent": 25}}},
    {"cluster": "web"},
]  # fmt: skip


async def _check_quarter(
    plane: Plane, backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    world = _world(backends)
    web = Service("web", world["web"].endpoints, routes=RouteTable.from_list(QUARTER))
    plane.source.set({"web": web, "web-v2": world["web-v2"]})
    client = await grpc_client(kind)
    await in_sync(plane, client.node_id)
    result = await client.call(header="x-fault", keys=["on"] * 1000, within=120)
    counted = Counter("aborted" if not name else _service_of(name) for name in result["picks"])
    assert_shares(
        counted, {"aborted": 0.25, "web": 0.75}, 1000, alternative={"aborted": 0.5, "web": 0.5}
    )
    assert all("unavailable" in e.lower() for e in result["errors"]), result["errors"][:3]
    await in_sync(plane, client.node_id)


async def test_grpcio_abort_at_its_percentage(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio: an abort at 25 % fails 1000 RPCs' share within 5 sigma of 250 (50 % ruled
    out), each UNAVAILABLE; the rest reach web."""
    await _check_quarter(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_abort_at_its_percentage(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go: the same abort share."""
    await _check_quarter(plane, grpc_backends, grpc_client, "go")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
@settings(
    max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(route_lists(("web", "web-v2")))
async def test_both_clients_ack_any_route_table(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter, routes: list[Any]
) -> None:
    """Any valid table (paths, regexes, headers, gRPC methods, splits, timeouts, retries,
    faults): a grpcio and a grpc-go client started on it both ACK every resource (the
    Listener with or without the fault filter, the RouteConfiguration, both clusters), never
    a NACK on record. The first call's answer is not asked for: a drawn fault may fail it."""
    for route in routes:  # a drawn delay of a minute would only slow the first call down
        if "delay" in route.get("fault", {}):
            route["fault"]["delay"]["fixed"] = "1ms"
    world = _world(grpc_backends)
    table = RouteTable.from_list(routes)
    plane.source.set({**world, "web": Service("web", world["web"].endpoints, routes=table)})
    clients = [await grpc_client(kind, ready=False) for kind in ("python", "go")]
    for client in clients:
        await in_sync(plane, client.node_id, within=30.0)
        await client.stop()
