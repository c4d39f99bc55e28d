"""The reference balancer's route matching (`xdscp.balancer.routing`) against a real Envoy:
for every request of a grid of paths (case, query string, regex edges) and headers (range
with a sign, a non-integer, an empty value, an inverted present, names in upper case), the
service Envoy sends it to is the one the predicted route names."""

from __future__ import annotations

import asyncio
import http.client
import itertools

import pytest

from tests.harness.model import local_endpoints
from tests.harness.plane import EnvoyStarter, Plane, envoys_in_sync
from xdscp.balancer import first_match
from xdscp.demo.backend import Backend
from xdscp.model import RouteTable, Service
from xdscp.testing import wait_for
from xdscp.translate.routes import served_routes

pytestmark = pytest.mark.envoy

# Neighbouring routes go to different services, so a route mistaken for the next shows.
ROUTES = [
    {"match": {"prefix": "/API/", "case_sensitive": False}, "cluster": "web-v2"},
    {"match": {"path": "/exact"}, "cluster": "web"},
    {"match": {"regex": "/r/[0-9]+"}, "cluster": "web-v2"},
    {"match": {"prefix": "/h/", "headers": [{"name": "x-n", "range": [10, 20], "invert": True}]},
     "cluster": "web"},
    {"match": {"prefix": "/h/", "headers": [{"name": "x-u", "suffix": "ice"}]},
     "cluster": "web-v2"},
    {"match": {"prefix": "/h/", "headers": [{"name": "x-u", "regex": "a.*"}]}, "cluster": "web"},
    {"match": {"prefix": "/h/", "headers": [{"name": "x-p", "present": True, "invert": True}]},
     "cluster": "web-v2"},
]  # fmt: skip
PATHS = [
    "/api/x", "/Api/x", "/ap", "/exact", "/exact?q=1", "/exact/", "/EXACT", "/r/12",
    "/r/12?x=1", "/r/12/x", "/r/", "/h/", "/h/x?y=2", "/other",
]  # fmt: skip
HEADERS: list[dict[str, str]] = [
    {}, {"x-n": "15"}, {"x-n": "+15"}, {"x-n": "abc"}, {"x-n": "5"}, {"x-n": ""},
    {"x-u": "alice", "x-n": "12"}, {"x-u": "bob", "x-n": "12"}, {"X-U": "a", "X-N": "12"},
    {"x-p": "", "x-n": "12"}, {"x-p": "1", "x-n": "19", "x-u": "Alice"},
]  # fmt: skip


def _world(backends: list[Backend]) -> dict[str, Service]:
    ports = [b.http_port for b in backends]
    return {
        "web": Service("web", local_endpoints(ports[:2]), routes=RouteTable.from_list(ROUTES)),
        "web-v2": Service("web-v2", local_endpoints(ports[2:4])),
    }


def _service_of(backend: str | None) -> str:
    return {"b0": "web", "b1": "web", "b2": "web-v2", "b3": "web-v2"}.get(backend or "", "none")


def _observe(port: int, cases: list[tuple[str, dict[str, str]]]) -> list[str]:
    """Each request's service, through Envoy (one keep-alive connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen = []
    try:
        for path, headers in cases:
            conn.request("GET", path, headers={"Host": "web", **headers})
            response = conn.getresponse()
            response.read()
            seen.append(_service_of(response.getheader("x-backend")))
    finally:
        conn.close()
    return seen


async def test_envoy_takes_the_predicted_route(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """Every one of the grid's requests reaches the service of the route predicted for it."""
    world = _world(backends)
    plane.source.set(world)
    await envoy()
    await envoys_in_sync(plane)

    async def answered() -> bool:
        return (await asyncio.to_thread(_observe, plane.listener_port, [("/", {})])) != ["none"]

    await wait_for(answered, 30.0, interval=0.05, what="a backend answering through Envoy")
    routes = served_routes(world["web"], world)
    cases = list(itertools.product(PATHS, HEADERS))
    predicted = []
    for path, headers in cases:
        index = first_match(routes, path, headers)
        assert index is not None
        predicted.append(routes[index].targets[0])
    seen = await asyncio.to_thread(_observe, plane.listener_port, cases)
    wrong = [(case, p, s) for case, p, s in zip(cases, predicted, seen, strict=True) if p != s]
    assert wrong == [], wrong
    assert set(predicted) == {"web", "web-v2"}
    await envoys_in_sync(plane)
