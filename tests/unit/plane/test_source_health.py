"""Each source's state (ok, starting, degraded) with the time it began: the gauge, the
callback on a change, and `since` kept while the state holds; on a running plane, a dead
static file and a failing DNS name make `/readyz` say degraded (still 200)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from tests.harness.dns import SCRIPTED_REFRESH as FAST
from tests.harness.dns import ScriptedResolver
from xdscp.dns import DnsService
from xdscp.dns.errors import DnsServfailError
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.plane.source_health import SourceMonitor
from xdscp.sources.dns import DnsSource
from xdscp.sources.static import StaticSource


class Source:
    """A source whose readiness and error the test sets."""

    def __init__(self, name: str) -> None:
        self.name, self.ready, self.last_error = name, False, None  # type: str, bool, str | None


def test_states_their_start_and_the_gauge() -> None:
    """starting → ok → degraded (since the clock then; a new error text keeps `since`) → ok;
    each change calls back once and sets `xdscp_source_up`."""
    metrics_registry, now, changes = CollectorRegistry(), [100.0], []
    etcd = Source("etcd")
    monitor = SourceMonitor(
        [etcd], metrics_registry, lambda: changes.append(1), clock=lambda: now[0]
    )

    def up() -> float | None:
        return metrics_registry.get_sample_value("xdscp_source_up", {"source": "etcd"})

    assert [(s.state, s.since) for s in monitor.check()] == [("starting", 100.0)]
    assert up() == 0
    etcd.ready, now[0] = True, 105.0
    assert [(s.state, s.since) for s in monitor.check()] == [("ok", 105.0)]
    assert up() == 1
    etcd.last_error, now[0] = "no etcd endpoint reachable", 110.0
    (state,) = monitor.check()
    assert (state.state, state.since, state.error) == ("degraded", 110.0, etcd.last_error)
    assert state.as_json()["since"] == "1970-01-01T00:01:50+00:00"
    assert up() == 0
    etcd.last_error, now[0] = "connection refused", 115.0
    assert [(s.state, s.since, s.error) for s in monitor.check()] == [
        ("degraded", 110.0, "connection refused")
    ]
    now[0] = 120.0
    monitor.check()  # nothing changed: no callback
    etcd.last_error = None
    assert [(s.state, s.since) for s in monitor.check()] == [("ok", 120.0)]
    assert up() == 1
    assert len(changes) == 5


async def _readyz(plane: ControlPlane) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{plane.admin.port}/readyz") as response,
    ):
        return response.status, await response.json()


async def _until(plane: ControlPlane, holds: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """/readyz's body once `holds(body)`; it must be 200 then."""
    async with asyncio.timeout(10):
        while True:
            code, body = await _readyz(plane)
            if holds(body):
                assert code == 200, body
                return body
            await asyncio.sleep(0.02)


def _degraded(body: dict[str, Any]) -> set[str]:
    return {s["source"] for s in body["sources"] if s["state"] == "degraded"}


async def test_an_unreadable_file_and_a_failing_dns_name_are_degraded(tmp_path: Path) -> None:
    """A running serve whose static file disappears and whose DNS name starts failing stays
    ready (200, the last services served) but says degraded, naming both; both back: ok."""
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  web:\n    endpoints: [{address: 10.0.0.1, port: 80}]\n")
    resolver = ScriptedResolver()
    resolver.answers = {"api": ["10.0.0.2"]}
    dns = DnsSource([DnsService("api", "api.test", port=80)], refresh=FAST, resolver=resolver)
    options = ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)
    plane = build_plane(ServerConfig(serve=options), sources=[StaticSource(path, poll_s=0.01), dns])
    await plane.start()
    try:
        await _until(plane, lambda body: body["status"] == "ok")
        path.unlink()
        resolver.answers["api"] = DnsServfailError("api.test", "SERVFAIL")
        body = await _until(plane, lambda body: _degraded(body) == {"static", "dns"})
        assert (body["ready"], body["status"]) == (True, "degraded")
        assert "static degraded since" in body["reason"]
        assert "dns degraded since" in body["reason"]
        assert set(plane.pipeline.merged) == {"web", "api"}  # the last known services, still served
        path.write_text("services:\n  web:\n    endpoints: [{address: 10.0.0.1, port: 80}]\n")
        resolver.answers["api"] = ["10.0.0.2"]
        await _until(plane, lambda body: body["status"] == "ok")
    finally:
        await plane.stop()
