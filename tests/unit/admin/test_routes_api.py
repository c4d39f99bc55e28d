"""A service's routes in the admin API of a running control plane: `/api/services` gives
them as served (a target that is not served noted as dropped, the default route xdscp
appends marked), and `/api/predict?path=&header=` the route a request takes and its split."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from xdscp.model import Endpoint, RouteTable, Service
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for

ROUTES = RouteTable.from_list([
    {"match": {"headers": [{"name": "x-canary", "exact": "1"}]}, "cluster": "web-v2",
     "timeout": "2s"},
    {"match": {"prefix": "/gone/"}, "cluster": "absent"},
    {"match": {"prefix": "/flaky/", "case_sensitive": False}, "split": {"web": 1, "absent": 1},
     "fault": {"abort": {"http_status": 503, "percent": 5}}},
    {"match": {"path": "/canary"}, "split": {"web": 3, "web-v2": 1}},
])  # fmt: skip
SERVICES = {
    "web": Service("web", (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)), routes=ROUTES),
    "web-v2": Service("web-v2", (Endpoint("10.0.1.1", 80),)),
}


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """A control plane serving web (with routes) and web-v2; its admin base URL."""
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)),
        sources=[MemorySource(SERVICES)],
    )
    await plane.start()
    try:
        await wait_for(lambda: plane.view.readiness()[0])
        yield f"http://127.0.0.1:{plane.admin.port}"
    finally:
        await plane.stop()


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_services_show_the_served_routes(base: str) -> None:
    """Each route in order with its served targets, weights and shares; the absent target
    dropped (its route unserved when nothing is left); the appended default route last."""
    status, body = await _get(f"{base}/api/services")
    assert status == 200
    shown = {s["name"]: s for s in body["services"]}
    assert shown["web-v2"]["routes"] is None
    routes = shown["web"]["routes"]
    assert [r["served"] for r in routes] == [True, False, True, True, True]
    assert [r["default"] for r in routes] == [False] * 4 + [True]
    assert routes[0]["match"] == {"headers": [{"name": "x-canary", "exact": "1"}]}
    assert routes[0]["targets"] == [{"cluster": "web-v2", "weight": None, "share": 1.0}]
    assert routes[0]["timeout"] == 2.0
    assert routes[1] == {**routes[1], "targets": [], "dropped": ["absent"]}
    assert routes[2]["targets"] == [{"cluster": "web", "weight": 1, "share": 1.0}]
    assert routes[2]["dropped"] == ["absent"]
    assert routes[2]["fault"] == {"abort": {"http_status": 503, "percent": 5.0}}
    assert routes[2]["match"] == {"prefix": "/flaky/", "case_sensitive": False}
    assert routes[3]["targets"] == [
        {"cluster": "web", "weight": 3, "share": 0.75},
        {"cluster": "web-v2", "weight": 1, "share": 0.25},
    ]
    assert routes[4]["match"] == {}
    assert routes[4]["targets"] == [{"cluster": "web", "weight": None, "share": 1.0}]


async def test_predict_takes_the_route_of_the_request(base: str) -> None:
    """path= and header= pick the route; each cluster's share times its endpoints' shares."""
    status, body = await _get(f"{base}/api/predict?service=web&path=/canary&requests=1000")
    assert status == 200
    route = body["route"]
    assert (route["index"], route["served"], route["path"]) == (2, 4, "/canary")
    assert [(c["cluster"], c["weight"], c["share"]) for c in route["clusters"]] == [
        ("web", 3, 0.75), ("web-v2", 1, 0.25),
    ]  # fmt: skip
    web = route["clusters"][0]["endpoints"]
    assert [e["share"] for e in web] == [0.5, 0.5]
    assert [e["route_share"] for e in web] == [0.375, 0.375]
    assert route["notes"]
    assert "absent" in route["notes"][0]
    status, body = await _get(f"{base}/api/predict?service=web&path=/FLAKY/x&header=X-Canary:1")
    assert body["route"]["index"] == 0
    assert body["route"]["route"]["targets"][0]["cluster"] == "web-v2"
    status, body = await _get(f"{base}/api/predict?service=web&path=/FLAKY/x")
    assert body["route"]["index"] == 1
    assert body["route"]["route"]["fault"] == {"abort": {"http_status": 503, "percent": 5.0}}


async def test_predict_refuses_a_bad_path(base: str) -> None:
    """A path not starting with '/' is a 400 naming the parameter."""
    status, body = await _get(f"{base}/api/predict?service=web&path=nope")
    assert status == 400
    assert "path" in body["error"]
