"""Routes through a real Envoy configured over xDS: a 90/10 canary split within 5 sigma, a
header and a path routed to the second service exactly, a fault abort at 100 %, nothing
NACKed; a target that registers later joins the split."""

from __future__ import annotations

import asyncio
import http.client
from collections import Counter

import pytest

from tests.harness.model import local_endpoints
from tests.harness.plane import EnvoyStarter, Plane, envoys_in_sync
from tests.harness.routes import CANARY_ROUTES
from tests.harness.stats import assert_shares
from tests.harness.traffic import envoy_stats
from xdscp.demo.backend import Backend
from xdscp.model import RouteTable, Service
from xdscp.testing import wait_for

pytestmark = pytest.mark.envoy
N = 2000


def _requests(
    port: int, count: int, path: str = "/", headers: dict[str, str] | None = None
) -> list[tuple[int, str | None]]:
    """`count` GETs to Host `web` on one keep-alive connection: (status, backend name)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(count):
            conn.request("GET", path, headers={"Host": "web", **(headers or {})})
            response = conn.getresponse()
            response.read()
            out.append((response.status, response.getheader("x-backend")))
            if response.getheader("connection") == "close":
                conn.close()
    finally:
        conn.close()
    return out


async def _send(
    plane: Plane, count: int, path: str = "/", headers: dict[str, str] | None = None
) -> list[tuple[int, str | None]]:
    return await asyncio.to_thread(_requests, plane.listener_port, count, path, headers)


def _world(backends: list[Backend], routes: list[object]) -> dict[str, Service]:
    """`web` on b0, b1 with `routes`; `web-v2` on b2, b3."""
    ports = [b.http_port for b in backends]
    table = RouteTable.from_list(routes)
    return {
        "web": Service("web", local_endpoints(ports[:2]), routes=table),
        "web-v2": Service("web-v2", local_endpoints(ports[2:4])),
    }


def _service_of(backend: str | None) -> str:
    return {"b0": "web", "b1": "web", "b2": "web-v2", "b3": "web-v2"}.get(backend or "", "none")


async def _answered(plane: Plane) -> None:
    async def answered() -> bool:
        return (await _send(plane, 1))[0][1] is not None

    await wait_for(answered, 30.0, interval=0.05, what="a backend answering through Envoy")


async def test_canary_split_header_path_and_fault(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """2000 requests to `/`: web-v2 takes 10 % within 5 sigma (and the 50/50 split is ruled
    out); `x-canary: always` and `/v2/` go to web-v2 every time; `/fault/` is aborted with
    503 every time (Envoy's fault filter counts each); every type ACKed."""
    plane.source.set(_world(backends, CANARY_ROUTES))
    proxy = await envoy()
    await envoys_in_sync(plane)
    await _answered(plane)
    answers = await _send(plane, N)
    assert all(status == 200 for status, _ in answers), Counter(s for s, _ in answers)
    counted = Counter(_service_of(who) for _, who in answers)
    assert_shares(counted, {"web": 0.9, "web-v2": 0.1}, N, alternative={"web": 0.5, "web-v2": 0.5})
    header = await _send(plane, 200, "/", {"x-canary": "always"})
    assert Counter(_service_of(who) for _, who in header) == {"web-v2": 200}
    near_miss = await _send(plane, 200, "/", {"x-canary": "always-not"})
    assert Counter(_service_of(who) for _, who in near_miss).keys() == {"web", "web-v2"}
    path = await _send(plane, 200, "/v2/items")
    assert Counter(_service_of(who) for _, who in path) == {"web-v2": 200}
    faults = await _send(plane, 100, "/fault/x")
    assert Counter(status for status, _ in faults) == {503: 100}
    stats = await envoy_stats(proxy, "fault.aborts_injected")
    assert sum(stats.values()) == 100, stats
    await envoys_in_sync(plane)


async def test_a_target_registering_later_joins_the_split(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """Routes naming web-v2 before it exists: Envoy gets routes to web only (nothing
    NACKed, every request answered by web); once web-v2 is served, the split includes it."""
    world = _world(backends, [{"split": {"web": 50, "web-v2": 50}}])
    plane.source.set({"web": world["web"]})
    await envoy()
    await envoys_in_sync(plane)
    await _answered(plane)
    before = await _send(plane, 200)
    assert Counter(_service_of(who) for _, who in before) == {"web": 200}
    plane.source.set(world)
    await envoys_in_sync(plane)

    async def split() -> bool:
        answers = await _send(plane, 50)
        return {_service_of(who) for _, who in answers} == {"web", "web-v2"}

    await wait_for(split, 30.0, interval=0.05, what="web-v2 joining the split")
    await envoys_in_sync(plane)


async def test_faults_at_their_percentage(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """An abort at 25 %: of 1000 requests, 503s within 5 sigma of 250 (a 50 % abort ruled
    out), the rest answered by web; a 1 ms delay at 100 %: Envoy counts a delay on each of
    200 requests, all answered."""
    routes = [
        {"match": {"prefix": "/quarter/"}, "cluster": "web",
         "fault": {"abort": {"http_status": 503, "percent": 25}}},
        {"match": {"prefix": "/slow/"}, "cluster": "web",
         "fault": {"delay": {"fixed": "1ms", "percent": 100}}},
        {"cluster": "web"},
    ]  # fmt: skip
    plane.source.set(_world(backends, routes))
    proxy = await envoy()
    await envoys_in_sync(plane)
    await _answered(plane)
    answers = await _send(plane, 1000, "/quarter/x")
    counted = Counter("aborted" if s == 503 else _service_of(who) for s, who in answers)
    assert_shares(
        counted, {"aborted": 0.25, "web": 0.75}, 1000,
        alternative={"aborted": 0.5, "web": 0.5},
    )  # fmt: skip
    slow = await _send(plane, 200, "/slow/x")
    assert Counter(_service_of(who) for _, who in slow) == {"web": 200}
    delays = await envoy_stats(proxy, "fault.delays_injected")
    assert sum(delays.values()) == 200, delays
    await envoys_in_sync(plane)
