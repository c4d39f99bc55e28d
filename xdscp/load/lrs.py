"""LRS (`envoy.service.load_stats.v3.LoadReportingService`): clients' load reports in.

`LrsStream` is one stream's protocol, sans I/O: the first request names the node and gets
the one response that starts the reports (every cluster — `send_all_clusters` where the
client supports it, else the names `clusters()` gives —, the interval, per-endpoint
granularity); every request after it is a report, decoded into `LoadReport`s. `LrsService` is
the grpc.aio edge: it feeds the reports to a `LoadSink` and tells it when a stream ends, so
a client's reports stop counting with its stream.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

import grpc
import structlog
from envoy.service.load_stats.v3 import lrs_pb2

from xdscp.load.reports import LoadReport
from xdscp.load.wire import EndpointOf, decode_report

log = structlog.get_logger(__name__)

SERVICE = "envoy.service.load_stats.v3.LoadReportingService"
METHOD = "StreamLoadStats"
SEND_ALL = "envoy.lrs.supports_send_all_clusters"
MIN_INTERVAL_S = 1.0


class LoadSink(Protocol):
    """Where a stream's reports go (the plane's load book). `reporter` names one stream
    (`NODE#N`): two streams of one node id (a restart overlapping the old stream, two
    processes sharing an id) report apart, and each stops counting with its own stream."""

    def reports(self, reporter: str, reports: list[LoadReport]) -> None: ...

    def stream_ended(self, reporter: str) -> None: ...


class LrsStream:
    """One LRS stream: `on_request` gives the response to send (first request only) and the
    reports the request carried."""

    def __init__(
        self, interval_s: float, clusters: Callable[[], Iterable[str]], endpoint_of: EndpointOf
    ) -> None:
        self._interval_s = max(interval_s, MIN_INTERVAL_S)
        self._clusters = clusters
        self._endpoint_of = endpoint_of
        self.node: str | None = None

    def on_request(self, request: Any) -> tuple[Any | None, list[LoadReport]]:
        """(the response to send or None, the reports in `request`)."""
        if self.node is None:
            self.node = str(request.node.id)
            return self._start(request.node), decode_report(request, self._endpoint_of)
        return None, decode_report(request, self._endpoint_of, self.node)

    def _start(self, node: Any) -> Any:
        response = lrs_pb2.LoadStatsResponse(report_endpoint_granularity=True)
        response.load_reporting_interval.FromNanoseconds(int(self._interval_s * 1e9))
        if SEND_ALL in node.client_features:
            response.send_all_clusters = True
        else:
            response.clusters.extend(sorted(self._clusters()))
        return response


class LrsService:
    """The grpc.aio edge of LRS."""

    def __init__(
        self,
        sink: LoadSink,
        interval_s: float,
        clusters: Callable[[], Iterable[str]],
        endpoint_of: EndpointOf,
    ) -> None:
        self._sink = sink
        self._stream = functools.partial(LrsStream, interval_s, clusters, endpoint_of)
        self._streams = itertools.count(1)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The generic handler to add to a grpc.aio server."""
        method = grpc.stream_stream_rpc_method_handler(
            self._serve, request_deserializer=lrs_pb2.LoadStatsRequest.FromString,
            response_serializer=lrs_pb2.LoadStatsResponse.SerializeToString,
        )  # fmt: skip
        return [grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})]

    async def _serve(self, requests: AsyncIterator[Any], context: Any) -> None:
        stream, reporter = self._stream(), ""
        try:
            async for request in requests:
                response, reports = stream.on_request(request)
                if response is not None:
                    reporter = f"{stream.node}#{next(self._streams)}"
                    log.info("lrs_stream_opened", node=stream.node, reporter=reporter)
                    await context.write(response)
                if reports:
                    self._sink.reports(reporter, reports)
        finally:
            if reporter:
                self._sink.stream_ended(reporter)
                log.info("lrs_stream_closed", node=stream.node, reporter=reporter)
