"""`xdscp backend --capacity`: the demo backend reports its load on HTTP (header), gRPC (trailer
and OpenRcaService), and takes a new capacity while it runs; without it nothing changes."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from xds.data.orca.v3 import orca_load_report_pb2
from xds.service.orca.v3 import orca_pb2

from tests.unit.orca.envoy_parser import parse_headers
from tests.unit.orca.wire_reads import report_in, trailers_of
from xdscp.cli.backend import command
from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig
from xdscp.orca import HEADER, HeaderFormat

OOB = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"


def _request(
    port: int, path: str, method: str = "GET"
) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    running = Backend(BackendConfig("b-load", capacity=10, orca_format=HeaderFormat.JSON))
    await running.start()
    yield running
    await running.stop()


async def test_http_answers_carry_the_report(backend: Backend) -> None:
    """Every answered GET has the header (JSON here); health checks and controls do not."""
    _, headers, _ = await asyncio.to_thread(_request, backend.http_port, "/x")
    _, health, _ = await asyncio.to_thread(_request, backend.http_port, "/healthz")
    assert headers[HEADER].startswith("JSON ")
    report = parse_headers({HEADER: headers[HEADER]})
    assert report.rps_fractional > 0
    assert report.application_utilization == pytest.approx(report.rps_fractional / 10)
    assert HEADER not in health


async def test_the_capacity_changes_while_it_runs(backend: Backend) -> None:
    """POST /_demo/capacity?rps=N answers the new load; a bad value is a 400 and changes nothing."""
    status, _, load = await asyncio.to_thread(
        _request, backend.http_port, "/_demo/capacity?rps=40", "POST"
    )
    assert (status, load["capacity"]) == (200, 40.0)
    await asyncio.to_thread(_request, backend.http_port, "/x")
    _, headers, _ = await asyncio.to_thread(_request, backend.http_port, "/x")
    report = parse_headers({HEADER: headers[HEADER]})
    assert report.application_utilization == pytest.approx(report.rps_fractional / 40)
    for bad in ("0", "-3", "nan", "inf", "many"):
        status, _, answer = await asyncio.to_thread(
            _request, backend.http_port, f"/_demo/capacity?rps={bad}", "POST"
        )
        assert status == 400, bad
        assert "capacity" in str(answer["error"]) or "float" in str(answer["error"])
    _, _, load = await asyncio.to_thread(_request, backend.http_port, "/_demo/load")
    assert load["capacity"] == 40.0


async def test_grpc_calls_carry_the_trailer_and_oob_streams(
    backend: Backend, tmp_path: Path
) -> None:
    """Who ends with `endpoint-load-metrics-bin`; OpenRcaService streams the same meter."""
    target = f"127.0.0.1:{backend.grpc_port}"
    report = report_in(await trailers_of(target, WHO_METHOD, b"", tmp_path))
    assert report.application_utilization == pytest.approx(report.rps_fractional / 10)
    async with grpc.aio.insecure_channel(target) as channel:
        stream = channel.unary_stream(
            OOB,
            request_serializer=orca_pb2.OrcaLoadReportRequest.SerializeToString,
            response_deserializer=orca_load_report_pb2.OrcaLoadReport.FromString,
        )(orca_pb2.OrcaLoadReportRequest())
        first = await stream.read()
        stream.cancel()
    assert first.application_utilization == pytest.approx(first.rps_fractional / 10)


async def test_without_a_capacity_nothing_changes(tmp_path: Path) -> None:
    """No meter: no header, no trailer, no OpenRcaService, and the load controls say why."""
    plain = Backend(BackendConfig("b-plain"))
    await plain.start()
    try:
        _, headers, _ = await asyncio.to_thread(_request, plain.http_port, "/x")
        status, _, answer = await asyncio.to_thread(
            _request, plain.http_port, "/_demo/capacity?rps=5", "POST"
        )
        trailers = await trailers_of(f"127.0.0.1:{plain.grpc_port}", WHO_METHOD, b"", tmp_path)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plain.grpc_port}") as channel:
            stream = channel.unary_stream(OOB)(b"")
            with pytest.raises(grpc.aio.AioRpcError) as oob:
                await stream.read()
    finally:
        await plain.stop()
    assert HEADER not in headers
    assert (status, answer["error"]) == (409, "this backend reports no load (no --capacity)")
    assert "endpoint-load-metrics-bin" not in trailers
    assert trailers["grpc-status"] == "0"
    assert oob.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_capacity_and_cpu_together_are_refused() -> None:
    """The two loads exclude each other: a usage error before anything binds."""
    result = CliRunner().invoke(command, ["--name", "x", "--capacity", "5", "--report-cpu"])
    assert result.exit_code == 2
    assert "--capacity and --report-cpu exclude each other" in result.output


@pytest.mark.parametrize("capacity", ["0", "-1", "nan"])
def test_a_bad_capacity_is_refused(capacity: str) -> None:
    """The flag takes a number of requests per second above 0."""
    result = CliRunner().invoke(command, ["--name", "x", "--capacity", capacity])
    assert result.exit_code == 2
    assert "--capacity" in result.output


async def test_report_cpu_reports_the_process_cpu() -> None:
    """`--report-cpu`: the header carries the rate and the measured CPU, no capacity; the
    capacity cannot be set then."""
    backend = Backend(BackendConfig("b-cpu", report_cpu=True, orca_format=HeaderFormat.BIN))
    await backend.start()
    try:
        for _ in range(3):
            _, headers, _ = await asyncio.to_thread(_request, backend.http_port, "/x")
        status, _, answer = await asyncio.to_thread(
            _request, backend.http_port, "/_demo/capacity?rps=5", "POST"
        )
    finally:
        await backend.stop()
    report = parse_headers({HEADER: headers[HEADER]})
    assert report.rps_fractional > 0
    assert report.application_utilization == 0.0
    assert backend.meter is not None
    assert backend.meter.capacity is None
    assert status == 400
    assert "reports the CPU" in str(answer["error"])
