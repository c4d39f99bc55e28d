"""Backends reporting their load to clients (ORCA: Open Request Cost Aggregation).

Envoy's `client_side_weighted_round_robin` and gRPC's `weighted_round_robin` weigh each
endpoint by the load it reports with its responses. This package is what a backend needs to
report it; it imports nothing of xdscp but `errors`, so a user's own server can use it:

- `LoadReport`: the report, validated against the ORCA proto's bounds;
- `header_value(report, HeaderFormat.TEXT | JSON | BIN)`: the HTTP `endpoint-load-metrics`
  header (the formats Envoy parses); `trailer(report)`: gRPC's `endpoint-load-metrics-bin`;
- `LoadMeter`: counts requests over a short sliding window and makes the report
  (utilization = rate / capacity, or the process's CPU);
- `CallReporter(meter)`: a grpc.aio server interceptor (per-call trailer);
  `OpenRcaService(meter).add_to(server)`: the out-of-band stream;
- `aiohttp_middleware(meter)`, `asgi_middleware(app, meter)`: the header on every response.

A grpc.aio server reporting per call and out of band::

    meter = LoadMeter(capacity=200)
    server = grpc.aio.server(interceptors=[CallReporter(meter)])
    OpenRcaService(meter, min_interval=1).add_to(server)
"""

from xdscp.orca.grpc_server import (
    DEFAULT_MIN_INTERVAL,
    CallReporter,
    OpenRcaService,
    ReportSource,
    reporting_interval,
)
from xdscp.orca.http import aiohttp_middleware, asgi_middleware
from xdscp.orca.meter import LoadMeter, check_capacity, process_cpu_seconds
from xdscp.orca.report import LoadReport
from xdscp.orca.wire import HEADER, TRAILER, HeaderFormat, header_value, trailer

__all__ = [
    "DEFAULT_MIN_INTERVAL",
    "HEADER",
    "TRAILER",
    "CallReporter",
    "HeaderFormat",
    "LoadMeter",
    "LoadReport",
    "OpenRcaService",
    "ReportSource",
    "aiohttp_middleware",
    "asgi_middleware",
    "check_capacity",
    "header_value",
    "process_cpu_seconds",
    "reporting_interval",
    "trailer",
]
