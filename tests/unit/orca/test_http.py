"""The `endpoint-load-metrics` header on every response: an aiohttp middleware (a real server
and client) and an ASGI middleware (driven as a server drives it)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.orca.envoy_parser import parse_headers
from xdscp.orca import HEADER, HeaderFormat, LoadMeter, aiohttp_middleware, asgi_middleware


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _broken(_request: web.Request) -> web.Response:
    raise web.HTTPServiceUnavailable


@pytest.mark.parametrize("form", list(HeaderFormat))
async def test_aiohttp_responses_carry_the_report(form: HeaderFormat) -> None:
    """Answered and raised responses carry it in the chosen format; skipped paths do not;
    a 5xx counts as an error."""
    meter = LoadMeter(capacity=50)
    app = web.Application(
        middlewares=[aiohttp_middleware(meter, form, skip=frozenset({"/healthz"}))]
    )
    app.router.add_get("/", _ok)
    app.router.add_get("/broken", _broken)
    app.router.add_get("/healthz", _ok)
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/")
        broken = await client.get("/broken")
        health = await client.get("/healthz")
    assert ok.headers[HEADER].startswith(f"{form} ")
    report = parse_headers({HEADER: ok.headers[HEADER]})
    assert report.rps_fractional > 0
    assert report.application_utilization == pytest.approx(report.rps_fractional / 50)
    assert broken.status == 503
    assert parse_headers({HEADER: broken.headers[HEADER]}).eps > 0
    assert HEADER not in health.headers


async def test_asgi_responses_carry_the_report() -> None:
    """The header is added to `http.response.start` (replacing one the app set); lifespan
    and skipped paths pass through untouched."""
    meter = LoadMeter(capacity=10)
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"endpoint-load-metrics", b"stale")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    wrapped = asgi_middleware(app, meter, HeaderFormat.JSON, skip=frozenset({"/healthz"}))
    await wrapped({"type": "http", "path": "/"}, receive, send)
    await wrapped({"type": "http", "path": "/healthz"}, receive, send)
    start, _, skipped, _ = sent
    values = [value for key, value in start["headers"] if key == HEADER.encode()]
    assert len(values) == 1
    report = parse_headers({HEADER: values[0].decode()})
    assert report.eps > 0
    assert report.rps_fractional > 0
    assert skipped["headers"] == [(b"endpoint-load-metrics", b"stale")]
