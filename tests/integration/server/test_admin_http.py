"""The admin HTTP server of a running control plane: every route with GET and HEAD, several
requests on one keep-alive connection, JSON 404 / 405 / 400, the JSON API and its
Server-Sent Events."""

from __future__ import annotations

import asyncio
import http.client
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from xdscp.balancer import build_balancer, simulate
from xdscp.model import BalancingPolicy, Endpoint, HashOn, Locality, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for
from xdscp.translate import client_resources

HASHED = Service(
    "web",
    (
        Endpoint("10.0.0.1", 80, weight=1, locality=Locality(zone="a")),
        Endpoint("10.0.0.2", 80, weight=2, locality=Locality(zone="b")),
        Endpoint("10.0.0.3", 80, weight=7, locality=Locality(zone="b")),
    ),
    BalancingPolicy(lb="maglev", hash_on=(HashOn.parse("header:x-user"),)),
)
WRR = Service(
    "api",
    (Endpoint("10.0.1.1", 8080, weight=1), Endpoint("10.0.1.2", 8080, weight=3)),
    BalancingPolicy(lb="weighted_round_robin"),
)
JSON_ROUTES = [
    "/healthz",
    "/readyz",
    "/ready",
    "/debug/nodes",
    "/status/nodes",
    "/debug/resources",
    "/status/snapshots",
    "/api",
    "/api/services",
    "/api/nodes",
    "/api/predict?service=web",
]


@pytest.fixture
async def plane() -> AsyncIterator[tuple[ControlPlane, MemorySource, str]]:
    """A control plane on free ports serving `web` and `api`; its admin base URL."""
    source = MemorySource({"web": HASHED, "api": WRR})
    control = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)), sources=[source]
    )
    await control.start()
    await wait_for(lambda: control.view.readiness()[0])
    try:
        yield control, source, f"http://127.0.0.1:{control.admin.port}"
    finally:
        await control.stop()


async def fetch(
    session: aiohttp.ClientSession, url: str, method: str = "GET"
) -> tuple[int, str, bytes]:
    async with session.request(method, url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_every_route_answers_get_and_head(plane: tuple[ControlPlane, Any, str]) -> None:
    """GET returns 200 with JSON (or the metrics text, or the page); HEAD the same status and
    headers with no body."""
    _, _, base = plane
    async with aiohttp.ClientSession() as session:
        for path in JSON_ROUTES:
            status, ctype, body = await fetch(session, base + path)
            assert (status, ctype) == (200, "application/json; charset=utf-8"), path
            json.loads(body)
            head_status, head_type, head_body = await fetch(session, base + path, "HEAD")
            assert (head_status, head_type, head_body) == (200, ctype, b""), path
        status, ctype, body = await fetch(session, base + "/metrics")
        assert status == 200
        assert ctype.startswith("text/plain")
        assert b"xdscp_connected_streams" in body
        for page, kind in [("/", "text/html"), ("/static/app.js", "javascript")]:
            status, ctype, body = await fetch(session, base + page)
            assert (status, kind in ctype, bool(body)) == (200, True, True), page
            assert (await fetch(session, base + page, "HEAD"))[::2] == (200, b"")


def _several_on_one_connection(port: int, paths: list[str]) -> list[tuple[int, bool, int]]:
    """(status, will_close, socket id) of each request, all sent on one HTTP/1.1 connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen = []
    try:
        for path in paths:
            conn.request("HEAD" if path == "/readyz" else "GET", path)
            response = conn.getresponse()
            response.read()
            seen.append((response.status, response.will_close, id(conn.sock)))
    finally:
        conn.close()
    return seen


async def test_keep_alive_serves_several_requests_on_one_connection(
    plane: tuple[ControlPlane, Any, str],
) -> None:
    """Five requests (GET and HEAD, a 404 among them) share one connection: the server never
    asks to close it."""
    control, _, _ = plane
    paths = ["/healthz", "/api/services", "/nope", "/readyz", "/metrics"]
    seen = await asyncio.to_thread(_several_on_one_connection, control.admin.port, paths)
    assert [status for status, _, _ in seen] == [200, 200, 404, 200, 200]
    assert not any(will_close for _, will_close, _ in seen)
    assert len({sock for _, _, sock in seen}) == 1


async def test_unknown_paths_and_methods_get_json_errors(
    plane: tuple[ControlPlane, Any, str],
) -> None:
    """404 lists the routes; 405 says which method and sets Allow."""
    _, _, base = plane
    async with aiohttp.ClientSession() as session:
        status, ctype, body = await fetch(session, base + "/nope")
        assert (status, ctype) == (404, "application/json; charset=utf-8")
        assert "/api/predict" in json.loads(body)["routes"]
        async with session.post(base + "/api/services") as response:
            assert response.status == 405
            assert "GET" in response.headers["Allow"]
            assert json.loads(await response.read())["error"] == "method POST not allowed"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "service: required: /api/predict?service=NAME"),
        ("service=web&requests=lots", 400, "requests: must be an integer, got 'lots'"),
        ("service=web&header=x-user", 400, "header: expected header=NAME:VALUE, got 'x-user'"),
        ("service=web&ip=nowhere", 400, "ip: must be an IPv4 or IPv6 literal, got 'nowhere'"),
        ("service=web&client=curl", 400, "client: must be one of envoy, grpc, got 'curl'"),
        ("service=missing", 404, "no service 'missing'"),
    ],
)
async def test_bad_predict_queries_say_what_is_wrong(
    plane: tuple[ControlPlane, Any, str], query: str, status: int, message: str
) -> None:
    """A bad query is a 400 (an unknown service a 404) with a message naming the parameter;
    serve keeps answering."""
    _, _, base = plane
    async with aiohttp.ClientSession() as session:
        got, _, body = await fetch(session, f"{base}/api/predict?{query}")
        assert (got, json.loads(body)["error"]) == (status, message)
        assert (await fetch(session, base + "/healthz"))[0] == 200


async def test_services_show_endpoints_policy_and_source(
    plane: tuple[ControlPlane, Any, str],
) -> None:
    """/api/services: each endpoint's address, port, weight, locality, priority, health and
    source, its measured load and the load it registered (null: nothing reported); the policy
    with its hash inputs."""
    _, _, base = plane
    async with aiohttp.ClientSession() as session:
        services = json.loads((await fetch(session, base + "/api/services"))[2])["services"]
    assert [s["name"] for s in services] == ["api", "web"]
    web = services[1]
    assert web["source"] == "memory"
    assert web["policy"]["lb"] == "maglev"
    assert web["policy"]["hash_on"] == ["header:x-user"]
    assert web["endpoints"][2] == {
        "key": "10.0.0.3:80", "address": "10.0.0.3", "port": 80, "weight": 7,
        "locality": {"region": "", "zone": "b", "sub_zone": ""}, "priority": 0,
        "health": "healthy", "metadata": {}, "hash_key": None, "source": "memory",
        "measured_rps": None, "measured_share": None, "predicted_share": None, "load": None,
    }  # fmt: skip
    assert web["load"] == {"rps": None, "predicted_by": None}


async def test_predict_is_the_reference_balancer(plane: tuple[ControlPlane, Any, str]) -> None:
    """The split is `simulate` over the served service (seed 0); the endpoint a request with
    `x-user: alice` reaches is the reference balancer's pick for that request's hash."""
    _, _, base = plane
    async with aiohttp.ClientSession() as session:
        body = (await fetch(session, f"{base}/api/predict?service=web&header=x-user:alice"))[2]
        rr = json.loads((await fetch(session, f"{base}/api/predict?service=api&ip=10.1.1.1"))[2])
    answer = json.loads(body)
    expected = simulate(HASHED, client_resources(), requests=10_000, seed=0)
    assert [(r["endpoint"], r["requests"]) for r in answer["split"]] == [
        (e.key, e.requests) for e in expected.endpoints
    ]
    lb = build_balancer(*client_resources()(HASHED), rng=random.Random(0))
    digest = lb.request_hash(headers={"x-user": "alice"})
    assert answer["request"]["hash"] == str(digest)
    assert answer["request"]["endpoint"] == str(lb.choose(digest))
    assert [r["requests"] for r in rr["split"]] == [2500, 7500]
    assert rr["request"]["endpoint"] is None
    assert "does not hash" in rr["request"]["note"]


async def _next_event(response: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next Server-Sent Event's (name, JSON data), skipping keep-alive comments."""
    name, data = "", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and name:
            return name, json.loads(data)
    raise AssertionError("the event stream ended")


async def test_events_push_services_when_a_registration_changes(
    plane: tuple[ControlPlane, MemorySource, str],
) -> None:
    """/api/events sends services, nodes and sources at once, then a `services` event
    carrying the new endpoint after the source publishes it; serve stops with the stream
    open."""
    control, source, base = plane
    async with aiohttp.ClientSession() as session:
        assert (await fetch(session, base + "/api/events", "HEAD"))[0] == 200
        async with session.get(base + "/api/events") as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            first = dict([await _next_event(response) for _ in range(3)])
            assert [s["name"] for s in first["services"]["services"]] == ["api", "web"]
            assert first["nodes"] == []
            assert [s["state"] for s in first["sources"]["sources"]] == ["ok"]
            grown = Service("web", (*HASHED.endpoints, Endpoint("10.0.0.4", 80)), HASHED.policy)
            source.set({"web": grown, "api": WRR})
            name, data = await asyncio.wait_for(_next_event(response), 10)
            assert name == "services"
            web = next(s for s in data["services"] if s["name"] == "web")
            assert "10.0.0.4:80" in [e["key"] for e in web["endpoints"]]
            await asyncio.wait_for(control.stop(), 10)  # the open stream does not hold it
            with pytest.raises(AssertionError, match="ended"):
                await asyncio.wait_for(_next_event(response), 10)
