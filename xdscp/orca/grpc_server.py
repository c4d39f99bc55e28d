"""ORCA for a grpc.aio server: the per-call trailer and the out-of-band `OpenRcaService`.

Per call: `CallReporter(meter)` is a server interceptor that counts every call in the meter and
sets the `endpoint-load-metrics-bin` trailer with the report at the call's start (set before
the handler runs, the trailer survives `context.abort`; a handler that sets trailing metadata
of its own replaces it, and should include `trailer(report)`).

Out of band: `OpenRcaService(source).add_to(server)` serves
`xds.service.orca.v3.OpenRcaService/StreamCoreMetrics`: the current report at once, then every
`report_interval` the client asked for, never more often than `min_interval` (gRPC's own ORCA
servers clamp the same way; grpc-go's default minimum is 30 s).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
import structlog
from google.protobuf import duration_pb2
from xds.service.orca.v3 import orca_pb2

from xdscp.errors import ValidationError
from xdscp.orca.meter import LoadMeter
from xdscp.orca.report import LoadReport
from xdscp.orca.wire import trailer

SERVICE = "xds.service.orca.v3.OpenRcaService"
METHOD = f"/{SERVICE}/StreamCoreMetrics"
DEFAULT_MIN_INTERVAL = 30.0
log = structlog.get_logger(__name__)


class ReportSource(Protocol):
    """Anything that makes the current report (a `LoadMeter` does)."""

    def report(self) -> LoadReport: ...


def _seconds(duration: duration_pb2.Duration) -> float:
    return float(duration.seconds) + duration.nanos / 1e9


def reporting_interval(requested: duration_pb2.Duration, min_interval: float) -> float:
    """The interval a stream reports at: the client's, raised to `min_interval`."""
    return max(_seconds(requested), min_interval)


class OpenRcaService:
    """`StreamCoreMetrics` over a `ReportSource`; `add_to(server)` registers it."""

    def __init__(self, source: ReportSource, *, min_interval: float = DEFAULT_MIN_INTERVAL) -> None:
        if not min_interval > 0:
            raise ValidationError("min_interval", f"must be above 0 seconds, got {min_interval}")
        self.source = source
        self.min_interval = min_interval
        self.streams = 0  # open streams, for tests and status

    async def stream_core_metrics(
        self, request: orca_pb2.OrcaLoadReportRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """The current report now, then one every interval until the client leaves (each
        serialized by `LoadReport.serialize`: never an empty message, which Envoy 1.40 takes
        for no report at all and drops the stream after three intervals of them)."""
        interval = reporting_interval(request.report_interval, self.min_interval)
        self.streams += 1
        log.debug("orca_stream_opened", peer=context.peer(), interval=interval)
        try:
            while True:
                yield self.source.report().serialize()
                await asyncio.sleep(interval)
        finally:
            self.streams -= 1

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving `OpenRcaService`."""
        method = grpc.unary_stream_rpc_method_handler(
            self.stream_core_metrics,
            request_deserializer=orca_pb2.OrcaLoadReportRequest.FromString,
            response_serializer=None,  # the bytes of LoadReport.serialize
        )
        return grpc.method_handlers_generic_handler(SERVICE, {"StreamCoreMetrics": method})

    def add_to(self, server: grpc.aio.Server) -> None:
        """Serve `OpenRcaService` on `server` (before it starts)."""
        server.add_generic_rpc_handlers((self.handler(),))


Behavior = Callable[..., Any]


class CallReporter(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Counts each call in `meter` and sends the report in the call's trailer.

    Calls to `OpenRcaService` and to `skip` methods (full names, `/pkg.Service/Method`) are
    neither counted nor reported on; a call that raises (an abort included) counts as an error.
    """

    def __init__(self, meter: LoadMeter, *, skip: frozenset[str] = frozenset()) -> None:
        self.meter = meter
        self.skip = skip | {METHOD, "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in self.skip:
            return handler
        return _wrap(handler, self.meter)


def _start(meter: LoadMeter, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    meter.record()
    context.set_trailing_metadata(trailer(meter.report()))


def _wrap(handler: grpc.RpcMethodHandler, meter: LoadMeter) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour counted and reported on (all four call kinds; async
    handlers: coroutines, or async generators for streamed responses)."""

    def unary(behavior: Behavior) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _start(meter, context)
            try:
                return await behavior(request, context)
            except Exception:
                meter.record_error()
                raise

        return call

    def streaming(behavior: Behavior) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _start(meter, context)
            try:
                async for response in behavior(request, context):
                    yield response
            except Exception:
                meter.record_error()
                raise

        return call

    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attribute, build in kinds:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            wrap = streaming if inspect.isasyncgenfunction(behavior) else unary
            return build(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
