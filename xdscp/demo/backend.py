"""A backend that answers HTTP and gRPC with its own name, so traffic splits can be counted.

HTTP: every GET answers `200` with a JSON body `{"backend": NAME}` and an `x-backend` header.
gRPC: the unary method `/xdscp.demo.Echo/Who` answers a `google.protobuf.StringValue` holding
NAME; any client can call it without generated code (grpc-go: `conn.Invoke` with
`wrapperspb.StringValue`).

Failures on demand (`Backend.faults`): `fail(503)` makes every request answer 503 (gRPC:
UNAVAILABLE) until `recover()`; `set_healthy(False)` makes `GET /healthz` answer 503; `hold()`
keeps every new HTTP request waiting (in flight) until `release()`. The backend counts what it
received (requests, health checks) and its most concurrent requests.

A backend run in another process (`xdscp backend`, the demo's) is told the same over HTTP on
its own port, under `/_demo/` (never counted as requests): `POST /_demo/fail?status=503`,
`POST /_demo/recover`, `GET /_demo/counts` (JSON: requests, failed, health_checks, in_flight).

It also serves `grpc.health.v1.Health` (overall and for `xdscp.demo.Echo`: SERVING until
`set_serving(False)`), and counts the gRPC calls it answers.

Load reports (ORCA, `xdscp.orca`), with a `capacity` (requests/s) or `report_cpu`: every
answered request (not `/healthz` or `/_demo/`) carries the `endpoint-load-metrics` header and
every `Who` call the `endpoint-load-metrics-bin` trailer, and the gRPC port serves
`OpenRcaService` (reports at most once a second). `POST /_demo/capacity?rps=N` changes the
capacity while it runs; `GET /_demo/load` answers the current report.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import structlog
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from xdscp.errors import ValidationError
from xdscp.orca import (
    HEADER,
    CallReporter,
    HeaderFormat,
    LoadMeter,
    OpenRcaService,
    header_value,
)

WHO_METHOD = "/xdscp.demo.Echo/Who"
_SERVICE = "xdscp.demo.Echo"
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One demo backend: its name and ports (0 picks a free port, -1 turns that protocol off)."""

    name: str
    host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    delay_s: float = 0.0
    capacity: float | None = None  # requests/s: report utilization = rate / capacity (ORCA)
    report_cpu: bool = False  # report the process's CPU instead
    orca_format: HeaderFormat = HeaderFormat.TEXT

    def meter(self) -> LoadMeter | None:
        """The load meter reports come from (None: this backend reports no load)."""
        if self.capacity is None and not self.report_cpu:
            return None
        return LoadMeter(self.capacity, report_cpu=self.report_cpu)


ORCA_MIN_INTERVAL = 1.0  # seconds between out-of-band reports, at the least


HEALTH_PATH = "/healthz"
CONTROL_PREFIX = "/_demo/"


class Faults:
    """What a backend is told to do wrong, and what it received (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = 0  # 0: answer normally; else this HTTP status (gRPC: UNAVAILABLE)
        self.healthy = True
        self.requests = 0
        self.failed = 0
        self.health_checks = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._released = threading.Event()
        self._released.set()

    def fail(self, status: int = 503) -> None:
        """Answer every request with `status` from now on."""
        self.status = status

    def recover(self) -> None:
        """Answer normally again."""
        self.status = 0

    def hold(self) -> None:
        """Keep every HTTP request that arrives from now on in flight until `release()`."""
        self._released.clear()

    def release(self) -> None:
        """Let held requests (and later ones) answer."""
        self._released.set()

    def wait_released(self) -> None:
        """Block while requests are held."""
        self._released.wait()

    def counts(self) -> dict[str, int]:
        """What the backend received so far (for `GET /_demo/counts`)."""
        with self._lock:
            return {
                "requests": self.requests,
                "failed": self.failed,
                "health_checks": self.health_checks,
                "in_flight": self.in_flight,
                "status": self.status,
            }

    def set_healthy(self, healthy: bool) -> None:
        """What `GET /healthz` answers: 200, or 503 when False."""
        self.healthy = healthy

    def begin(self) -> int:
        """Count one request in; the status to answer (0 = normal)."""
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.status:
                self.failed += 1
            return self.status

    def end(self) -> None:
        """Count one request out."""
        with self._lock:
            self.in_flight -= 1

    def health(self) -> bool:
        """Count one health check; whether to answer healthy."""
        with self._lock:
            self.health_checks += 1
            return self.healthy

    def reset_max_in_flight(self) -> None:
        """Start measuring the most concurrent requests afresh."""
        with self._lock:
            self.max_in_flight = self.in_flight


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this every proxied request waits ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        faults = self.server.faults
        if self.path == HEALTH_PATH:
            self._answer(200 if faults.health() else 503)
            return
        if self.path.startswith(CONTROL_PREFIX):
            self._control("GET")
            return
        status = faults.begin()
        meter = self.server.meter
        if meter is not None:
            meter.record(error=status >= 500)
        try:
            faults.wait_released()
            if self.server.delay_s:
                threading.Event().wait(self.server.delay_s)
            report = (
                None if meter is None else header_value(meter.report(), self.server.orca_format)
            )
            self._answer(status or 200, report=report)
        finally:
            faults.end()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._control("POST")

    def _control(self, method: str) -> None:
        """`/_demo/` requests: fail, recover, counts (see the module's docstring)."""
        faults = self.server.faults
        url = urllib.parse.urlsplit(self.path)
        action = (method, url.path.removeprefix(CONTROL_PREFIX))
        if action == ("POST", "fail"):
            status = urllib.parse.parse_qs(url.query).get("status", ["503"])[0]
            if not status.isdigit() or not 400 <= int(status) <= 599:
                self._answer(400, {"error": f"status must be 400..599, got {status!r}"})
                return
            faults.fail(int(status))
            log.info("backend_failing", name=self.server.name, status=int(status))
        elif action == ("POST", "recover"):
            faults.recover()
            log.info("backend_recovered", name=self.server.name)
        elif action in {("POST", "capacity"), ("GET", "load")}:
            self._load(action[1], urllib.parse.parse_qs(url.query))
            return
        elif action != ("GET", "counts"):
            self._answer(404, {"error": f"{method} {url.path}: no such control"})
            return
        self._answer(200, faults.counts())

    def _load(self, action: str, query: dict[str, list[str]]) -> None:
        """`POST /_demo/capacity?rps=N` (a new capacity), `GET /_demo/load`: the report."""
        meter = self.server.meter
        if meter is None:
            self._answer(409, {"error": "this backend reports no load (no --capacity)"})
            return
        if action == "capacity":
            try:
                meter.set_capacity(float(query.get("rps", ["?"])[0]))
            except (ValueError, ValidationError) as exc:  # float("x") is a ValueError too
                self._answer(400, {"error": str(exc)})
                return
            log.info("backend_capacity_changed", name=self.server.name, capacity=meter.capacity)
        report = meter.report()
        utilization = report.application_utilization or report.cpu_utilization
        load = {
            "capacity": meter.capacity,
            "rps": report.rps_fractional,
            "utilization": utilization,
        }
        self._answer(200, load)

    def _answer(
        self, status: int, document: dict[str, Any] | None = None, *, report: str | None = None
    ) -> None:
        body = json.dumps({"backend": self.server.name, **(document or {})}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-backend", self.server.name)
        if report is not None:
            self.send_header(HEADER, report)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request lines; the proxy's stats count requests."""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: BackendConfig, faults: Faults, meter: LoadMeter | None) -> None:
        super().__init__((config.host, config.http_port), _Handler)
        self.name = config.name
        self.delay_s = config.delay_s
        self.faults = faults
        self.meter = meter
        self.orca_format = config.orca_format

    def handle_error(self, request: object, client_address: object) -> None:
        """A client (a proxy that timed out) closing first is normal: stay quiet about it."""
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _CountingHealth(health_aio.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 that counts the Check calls it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802  # the RPC's name
        self.checks += 1
        return await super().Check(request, context)


def _who_handler(
    config: BackendConfig, faults: Faults, counter: list[int]
) -> grpc.GenericRpcHandler:
    async def who(_request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        status = faults.begin()
        counter[0] += 1
        try:
            if config.delay_s:
                await asyncio.sleep(config.delay_s)
            if status:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{config.name} failing")
            return wrappers_pb2.StringValue(value=config.name).SerializeToString()
        finally:
            faults.end()

    handler = grpc.unary_unary_rpc_method_handler(
        who, request_deserializer=None, response_serializer=None
    )
    return grpc.method_handlers_generic_handler(_SERVICE, {"Who": handler})


class Backend:
    """A running demo backend; `await start()`, then `await stop()`."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.faults = Faults()
        self.http_port = 0
        self.grpc_port = 0
        self._http: _HttpServer | None = None
        self._grpc: grpc.aio.Server | None = None  # keep a reference: it stops when collected
        self._health = _CountingHealth()
        self._calls = [0]
        self.meter = config.meter()  # None: no load reports

    @property
    def grpc_calls(self) -> int:
        """`/xdscp.demo.Echo/Who` calls answered so far."""
        return self._calls[0]

    @property
    def health_checks(self) -> int:
        """`grpc.health.v1.Health/Check` calls answered so far."""
        return int(self._health.checks)

    async def set_serving(self, serving: bool) -> None:
        """What grpc.health.v1 answers, overall and for `xdscp.demo.Echo`."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else (health_pb2.HealthCheckResponse.NOT_SERVING)
        )
        for service in ("", _SERVICE):
            await self._health.set(service, status)

    async def start(self) -> None:
        """Bind the configured ports (0 picks a free one) and start serving."""
        if self.config.http_port >= 0:
            self._http = _HttpServer(self.config, self.faults, self.meter)
            self.http_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        if self.config.grpc_port >= 0:
            self._grpc = self._grpc_server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
            await self.set_serving(True)
            self.grpc_port = self._grpc.add_insecure_port(
                f"{self.config.host}:{self.config.grpc_port}"
            )
            await self._grpc.start()
        log.info(
            "backend_started",
            name=self.config.name,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
        )

    def _grpc_server(self) -> grpc.aio.Server:
        """The gRPC server: Who (+ per-call load reports and OpenRcaService with a meter)."""
        interceptors = [] if self.meter is None else [CallReporter(self.meter)]
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", 0)],  # a port in use fails
            interceptors=interceptors,
        )
        server.add_generic_rpc_handlers((_who_handler(self.config, self.faults, self._calls),))
        if self.meter is not None:
            OpenRcaService(self.meter, min_interval=ORCA_MIN_INTERVAL).add_to(server)
        return server

    async def stop(self) -> None:
        """Stop both servers (held requests are released first)."""
        self.faults.release()
        if self._http is not None:
            await asyncio.to_thread(self._http.shutdown)
            self._http.server_close()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        log.info("backend_stopped", name=self.config.name)
