"""Every xDS stream close is logged once (`stream_closed`, with the reason and the gRPC status)
and counted by reason, so that streams opened minus streams closed is streams connected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from structlog.testing import capture_logs

from xdscp.cache import TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for

WEB = {"web": Service("web", (Endpoint("10.0.0.1", 80),))}


@pytest.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    control = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)), sources=[MemorySource(WEB)]
    )
    await control.start()
    try:
        yield control
    finally:
        await control.stop()


def _sample(plane: ControlPlane, name: str, **labels: str) -> float:
    return plane.metrics_registry.get_sample_value(name, {"client": "envoy", **labels}) or 0.0


async def _closed(plane: ControlPlane, logs: list[dict[str, Any]], node: str) -> dict[str, Any]:
    """The one `stream_closed` record of `node`, once logged; the counters agree with it."""

    def records() -> list[dict[str, Any]]:
        return [r for r in logs if r["event"] == "stream_closed" and r["node"] == node]

    await wait_for(records, 10)
    (record,) = records()
    opened = _sample(plane, "xdscp_streams_opened_total")
    closed = sum(
        sample.value
        for metric in plane.metrics.streams_closed.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    assert opened - closed == _sample(plane, "xdscp_connected_streams")
    assert _sample(plane, "xdscp_streams_closed_total", reason=record["reason"]) >= 1
    return record


async def _stream(
    plane: ControlPlane, node: str, end: Callable[[Any, grpc.aio.Channel], Awaitable[None]],
    *, type_url: str = TypeUrl.CLUSTER,
) -> None:  # fmt: skip
    """Open an ADS stream as `node`, read its first response (if any), then `end` it."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        first = discovery_pb2.DiscoveryRequest(type_url=type_url)
        first.node.CopyFrom(base_pb2.Node(id=node, user_agent_name="envoy"))
        await call.write(first)
        if type_url:
            async with asyncio.timeout(10):
                await call.read()
        await end(call, channel)


async def _cancel(call: Any, _: grpc.aio.Channel) -> None:
    call.cancel()


async def _half_close(call: Any, _: grpc.aio.Channel) -> None:
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def _close_channel(_: Any, channel: grpc.aio.Channel) -> None:
    await channel.close()


async def _status(call: Any, _: grpc.aio.Channel) -> None:
    await call.code()


@pytest.mark.parametrize(
    ("end", "reason", "code"),
    [
        (_cancel, "cancelled", "CANCELLED"),
        (_close_channel, "cancelled", "CANCELLED"),  # the connection closed
        (_half_close, "client_closed", "OK"),
    ],
)
async def test_a_client_ending_its_stream_is_logged_with_the_reason(
    plane: ControlPlane,
    end: Callable[[Any, grpc.aio.Channel], Awaitable[None]],
    reason: str,
    code: str,
) -> None:
    """Cancelled, connection closed, requests ended: one info line with reason and status."""
    node = f"n-{end.__name__}"
    with capture_logs() as logs:
        await _stream(plane, node, end)
        record = await _closed(plane, logs, node)
    assert (record["reason"], record["code"], record["log_level"]) == (reason, code, "info")


async def test_an_invalid_request_is_logged_as_a_warning_with_the_details(
    plane: ControlPlane,
) -> None:
    """An error xdscp ends the stream with: a warning, its status code and its message."""
    with capture_logs() as logs:
        await _stream(plane, "no-type", _status, type_url="")
        record = await _closed(plane, logs, "no-type")
    assert (record["reason"], record["code"], record["log_level"]) == (
        "invalid_request", "INVALID_ARGUMENT", "warning",
    )  # fmt: skip
    assert "type" in record["details"]
    errors = plane.metrics_registry.get_sample_value(
        "xdscp_stream_errors_total", {"reason": "invalid_request"}
    )
    assert errors == 1


async def test_server_shutdown_is_the_reason_when_xdscp_stops() -> None:
    """Streams still open when the control plane stops close as `server_shutdown`."""
    control = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)), sources=[MemorySource(WEB)]
    )
    await control.start()
    stopped = asyncio.Event()

    async def stop(_: Any, __: grpc.aio.Channel) -> None:
        await control.stop()
        stopped.set()

    with capture_logs() as logs:
        await _stream(control, "to-stop", stop)
        record = await _closed(control, logs, "to-stop")
    assert stopped.is_set()
    assert (record["reason"], record["log_level"]) == ("server_shutdown", "info")
