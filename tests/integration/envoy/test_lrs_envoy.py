"""A real Envoy reports its load to xdscp's LRS service, per endpoint, with the utilization
its backends reported through ORCA.

A static Envoy (no xDS: the LRS service alone, without the plane) routes to a cluster
`web` of two HTTP backends that answer with `endpoint-load-metrics: TEXT
application_utilization=U` (0.4 and 0.8); its bootstrap's `load_stats_config` points at an
`LrsService` on a grpc.aio server, and the cluster propagates `application_utilization` into
LRS (`lrs_report_endpoint_metrics`). Once its reports have started, after N requests through
Envoy the reports add up to N, each endpoint's utilization is what it reported, the
`LoadBook` gives one plausible sample per endpoint, and the reports stop counting when
Envoy's stream ends.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web

from xdscp.load import LoadBook, LoadReport
from xdscp.load.lrs import LrsService
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_for

pytestmark = pytest.mark.envoy

UTILIZATION = (0.4, 0.8)
REQUESTS = 40
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
_HTTP2 = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


class Recorder:
    """The LoadSink: a LoadBook, plus what every report added up to."""

    def __init__(self, known: set[str]) -> None:
        self.book = LoadBook(stale_after_s=3600)
        self.known = known
        self.requests: Counter[str] = Counter()
        self.utilization: dict[str, float] = {}
        self.carried: Counter[str] = Counter()
        self.ended: list[str] = []
        self.received = 0  # requests carrying reports (Envoy sends one every interval)

    def reports(self, reporter: str, reports: list[LoadReport]) -> None:
        self.received += 1
        for report in reports:
            self.book.record(
                reporter, report, 0.0, lambda cluster, key: f"{cluster}/{key}" in self.known
            )
            for load in report.loads:
                if load.cluster == "web":
                    self.requests[load.endpoint] += load.successful + load.errors
                    total = self.utilization.get(load.endpoint, 0.0) + load.utilization_total
                    self.utilization[load.endpoint] = total
                    self.carried[load.endpoint] += load.utilization_requests

    def _known(self, cluster: str, endpoint: str) -> bool:
        return f"{cluster}/{endpoint}" in self.known

    def stream_ended(self, reporter: str) -> None:
        self.ended.append(reporter)
        self.book.forget(reporter)


async def _backend(utilization: float, exits: list[web.AppRunner]) -> int:
    async def answer(_: web.Request) -> web.Response:
        metrics = f"TEXT application_utilization={utilization}"
        return web.Response(text="ok", headers={"endpoint-load-metrics": metrics})

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    exits.append(runner)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return port


def _endpoint(port: int) -> dict[str, Any]:
    return {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                        "port_value": port}}}}  # fmt: skip


def _bootstrap(listener: int, lrs: int, backends: list[int]) -> dict[str, Any]:
    router = {"name": "router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}  # fmt: skip
    routes = {"virtual_hosts": [{"name": "web", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]}  # fmt: skip
    manager = {"@type": _HCM + "HttpConnectionManager", "stat_prefix": "web",
               "http_filters": [router], "route_config": routes}  # fmt: skip
    web_cluster = {
        "name": "web", "type": "STATIC", "connect_timeout": "1s",
        "lrs_report_endpoint_metrics": ["application_utilization"],
        "load_assignment": {"cluster_name": "web", "endpoints": [
            {"locality": {"zone": "z1"}, "lb_endpoints": [_endpoint(p) for p in backends]}]},
    }  # fmt: skip
    lrs_cluster = {
        "name": "xdscp_lrs", "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {_HTTP2: {
            "@type": f"type.googleapis.com/{_HTTP2}",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "xdscp_lrs", "endpoints": [
            {"lb_endpoints": [_endpoint(lrs)]}]},
    }  # fmt: skip
    return {
        "node": {"id": "lrs-envoy", "cluster": "test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "cluster_manager": {"load_stats_config": {
            "api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xdscp_lrs"}}]}},
        "static_resources": {
            "listeners": [{"name": "web", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": listener}},
                "filter_chains": [{"filters": [{"name": "hcm", "typed_config": manager}]}]}],
            "clusters": [web_cluster, lrs_cluster],
        },
    }  # fmt: skip


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
async def backends() -> AsyncIterator[list[int]]:
    runners: list[web.AppRunner] = []
    try:
        yield [await _backend(u, runners) for u in UTILIZATION]
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_envoy_reports_each_endpoints_requests_and_orca_utilization(
    backends: list[int], tmp_path: Path
) -> None:
    recorder = Recorder({f"web/127.0.0.1:{port}" for port in backends})
    server = grpc.aio.server()
    service = LrsService(recorder, 1.0, lambda: ["web"], lambda cluster, locality: None)
    server.add_generic_rpc_handlers(service.handlers())
    lrs_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await _report_through_envoy(recorder, lrs_port, backends, tmp_path)
    finally:
        await server.stop(0)
    await wait_for(lambda: recorder.ended != [], 30)
    assert recorder.ended == ["lrs-envoy#1"]
    assert len(recorder.book) == 0


async def _report_through_envoy(
    recorder: Recorder, lrs_port: int, backends: list[int], tmp_path: Path
) -> None:
    reported = {f"127.0.0.1:{port}": u for port, u in zip(backends, UTILIZATION, strict=True)}
    listener = free_port()
    envoy = EnvoyProcess(_bootstrap(listener, lrs_port, backends), tmp_path / "envoy")
    try:
        await asyncio.to_thread(envoy.start)
        # Envoy counts from the response that starts its reports; a first report means it
        # got that response (requests sent before it would not be counted).
        await wait_for(lambda: recorder.received > 0, 60)
        url = f"http://127.0.0.1:{listener}/"
        for _ in range(REQUESTS):
            await asyncio.to_thread(_get, url)
        await wait_for(lambda: sum(recorder.requests.values()) >= REQUESTS, 60)
        assert sum(recorder.requests.values()) == REQUESTS
        assert set(recorder.requests) == set(reported)
        for key, utilization in reported.items():
            assert recorder.carried[key] == recorder.requests[key]
            assert recorder.utilization[key] / recorder.carried[key] == pytest.approx(utilization)
        samples = {s.endpoint: s.utilization for s in recorder.book.samples(0.0)["web"]}
        assert samples == pytest.approx(reported)
    finally:
        await asyncio.to_thread(envoy.stop)
