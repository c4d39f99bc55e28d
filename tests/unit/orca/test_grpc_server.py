"""ORCA on a grpc.aio server: the per-call trailer (also on an abort) and the out-of-band
`OpenRcaService` stream.

grpcio's client keeps `endpoint-load-metrics-bin` to itself (C-core parses it for its LB
policies and never hands it to the application), so the trailer is read off the wire with
curl's HTTP/2; the stream is read by a grpcio client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from xds.data.orca.v3 import orca_load_report_pb2
from xds.service.orca.v3 import orca_pb2

from tests.unit.orca.wire_reads import report_in, trailers_of
from xdscp.errors import ValidationError
from xdscp.orca import (
    CallReporter,
    LoadMeter,
    LoadReport,
    OpenRcaService,
    reporting_interval,
)
from xdscp.testing import wait_for

OrcaLoadReport = orca_load_report_pb2.OrcaLoadReport


class Fixed:
    """A report source that counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def report(self) -> LoadReport:
        self.asked += 1
        return LoadReport(
            cpu_utilization=0.5, rps_fractional=float(self.asked), named_metrics={"q": 2.0}
        )


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    if request == b"fail":
        await context.abort(grpc.StatusCode.UNAVAILABLE, "asked to fail")
    return request


async def _count(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield request


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, LoadMeter, Fixed]]:
    meter = LoadMeter(capacity=100, window=3600)  # rates that cannot fall back to 0 mid-test
    source = Fixed()
    server = grpc.aio.server(interceptors=[CallReporter(meter)])
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    OpenRcaService(source, min_interval=0.01).add_to(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", meter, source
    await server.stop(None)


async def test_every_call_carries_the_report_in_its_trailer(
    server: tuple[str, LoadMeter, Fixed], tmp_path: Path
) -> None:
    """Unary and streamed calls end with `endpoint-load-metrics-bin`; each call is counted."""
    target, meter, _ = server
    first = await trailers_of(target, "/t.T/Echo", b"hi", tmp_path)
    second = await trailers_of(target, "/t.T/Count", b"x", tmp_path)
    assert first["grpc-status"] == second["grpc-status"] == "0"
    one, two = report_in(first), report_in(second)
    assert one.rps_fractional > 0
    assert two.application_utilization == pytest.approx(two.rps_fractional / 100)
    assert meter.report().rps_fractional > 0


async def test_an_aborted_call_keeps_its_report_and_counts_as_an_error(
    server: tuple[str, LoadMeter, Fixed], tmp_path: Path
) -> None:
    """The trailer is set before the handler runs, so `context.abort` keeps it. (The status
    reaches the client before the abort's exception leaves the handler: wait for the count.)"""
    target, meter, _ = server
    trailers = await trailers_of(target, "/t.T/Echo", b"fail", tmp_path)
    assert trailers["grpc-status"] == str(grpc.StatusCode.UNAVAILABLE.value[0])
    assert report_in(trailers).rps_fractional > 0
    await wait_for(lambda: meter.report().eps > 0, 60)


async def test_grpcio_clients_still_get_their_answer(server: tuple[str, LoadMeter, Fixed]) -> None:
    """The interceptor changes nothing a grpcio client sees but the count."""
    target, meter, _ = server
    async with grpc.aio.insecure_channel(target) as channel:
        assert await channel.unary_unary("/t.T/Echo")(b"hi") == b"hi"
        assert [r async for r in channel.unary_stream("/t.T/Count")(b"x")] == [b"x"] * 3
    assert meter.report().rps_fractional > 0


async def test_the_out_of_band_stream_reports_until_the_client_leaves(
    server: tuple[str, LoadMeter, Fixed],
) -> None:
    """StreamCoreMetrics sends the current report at once and again every interval."""
    target, _, source = server
    request = orca_pb2.OrcaLoadReportRequest(report_interval=duration_pb2.Duration(nanos=1_000_000))
    async with grpc.aio.insecure_channel(target) as channel:
        stream = channel.unary_stream(
            "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics",
            request_serializer=orca_pb2.OrcaLoadReportRequest.SerializeToString,
            response_deserializer=OrcaLoadReport.FromString,
        )(request)
        received = []
        async for report in stream:
            received.append(report)
            if len(received) == 3:
                stream.cancel()
                break
    assert [r.rps_fractional for r in received] == [1.0, 2.0, 3.0]
    assert received[0].cpu_utilization == 0.5
    assert dict(received[0].named_metrics) == {"q": 2.0}
    assert source.asked >= 3


def test_the_interval_is_raised_to_the_minimum() -> None:
    """A client asking more often than the minimum (or not saying) gets the minimum."""
    assert reporting_interval(duration_pb2.Duration(), 30.0) == 30.0
    assert reporting_interval(duration_pb2.Duration(seconds=1), 30.0) == 30.0
    assert reporting_interval(duration_pb2.Duration(seconds=45, nanos=500_000_000), 30.0) == 45.5
    with pytest.raises(ValidationError, match="min_interval"):
        OpenRcaService(Fixed(), min_interval=0)


async def test_an_idle_backend_still_sends_a_nonempty_message() -> None:
    """An all-zero report is not an empty message (Envoy 1.40 takes those for silence and
    drops the stream after three intervals: seen before this was fixed)."""
    server = grpc.aio.server()
    OpenRcaService(LoadMeter(capacity=5), min_interval=0.01).add_to(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.unary_stream(
                "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics",
                request_serializer=orca_pb2.OrcaLoadReportRequest.SerializeToString,
            )(orca_pb2.OrcaLoadReportRequest())
            raw = await stream.read()
            stream.cancel()
    finally:
        await server.stop(None)
    assert raw
    assert OrcaLoadReport.FromString(raw) == OrcaLoadReport()
