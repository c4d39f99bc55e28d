"""`xdscp status`, `config` and `nacks` pointed at the wrong place, or at a node that is not
there: one line saying what answered and which flag to use, exit status 1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from click.testing import CliRunner, Result
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from xdscp.cache import TypeUrl
from xdscp.cli import main
from xdscp.model import Endpoint, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource

COMMANDS = (["status"], ["config", "envoy-1"], ["nacks"], ["nacks", "envoy-1"])
USE = "give xdscp's admin address with --admin HOST:PORT (serve's --admin, default 127.0.0.1:18001)"


class Said:
    """What a command printed, without the log lines of the plane running in this process."""

    def __init__(self, result: Result) -> None:
        self.exit_code = result.exit_code
        lines = result.output.splitlines(keepends=True)
        self.output = "".join(line for line in lines if not line.startswith(("20", "{")))


async def _invoke(*args: str) -> Said:
    return Said(await asyncio.to_thread(CliRunner().invoke, main, list(args)))


@pytest.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    services = {"web": Service("web", (Endpoint("10.0.0.1", 80),))}
    options = ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)
    control = build_plane(ServerConfig(serve=options), sources=[MemorySource(services)])
    await control.start()
    try:
        yield control
    finally:
        await control.stop()


@pytest.mark.parametrize("command", COMMANDS)
async def test_the_xds_port_is_named_as_such(plane: ControlPlane, command: list[str]) -> None:
    """A real serve's xDS port answers HTTP/2: one line, not a 51-line traceback."""
    address = f"127.0.0.1:{plane.xds_port}"
    result = await _invoke(*command, "--admin", address)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {address} answered with gRPC (HTTP/2), not the admin HTTP API: that is"
        f" xdscp's xDS port (serve's --xds); {USE}\n"
    )


async def test_a_bare_grpc_server_is_recognised_too() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await _invoke("status", "--admin", f"127.0.0.1:{port}")
    finally:
        await server.stop(None)
    assert result.exit_code == 1
    assert "answered with gRPC (HTTP/2)" in result.output
    assert len(result.output.splitlines()) == 1


async def test_nothing_listening_is_one_line() -> None:
    server = grpc.aio.server()  # a port just freed: nothing listens there any more
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await server.stop(None)
    for command in COMMANDS:
        result = await _invoke(*command, "--admin", f"127.0.0.1:{port}")
        assert result.exit_code == 1
        assert result.output == (
            f"Error: nothing listens on 127.0.0.1:{port} (connection refused): is `xdscp serve`"
            f" running there? {USE}\n"
        )


async def test_an_unknown_node_is_an_error_naming_the_connected_ones(plane: ControlPlane) -> None:
    """`nacks nosuchnode` printed "0 NACK(s)" and exit 0; now it says no such node is
    connected and names the ones that are; a connected node's empty history is still 0."""
    admin = f"127.0.0.1:{plane.admin.port}"
    none_yet = await _invoke("nacks", "nosuchnode", "--admin", admin)
    assert none_yet.exit_code == 1
    assert (
        none_yet.output
        == f"Error: no node 'nosuchnode': no node is connected to xdscp at {admin}\n"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        request = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER)
        request.node.CopyFrom(base_pb2.Node(id="envoy-1", user_agent_name="envoy"))
        await call.write(request)
        async with asyncio.timeout(30):
            await call.read()  # answered: the stream is registered
        unknown = await _invoke("nacks", "nosuchnode", "--admin", admin)
        config = await _invoke("config", "nosuchnode", "--admin", admin)
        known = await _invoke("nacks", "envoy-1", "--admin", admin)
        call.cancel()
    assert unknown.exit_code == 1
    assert unknown.output == "Error: no node 'nosuchnode' is connected; connected: envoy-1\n"
    assert config.exit_code == 1
    assert config.output == unknown.output
    assert known.exit_code == 0, known.output
    assert "0 NACK(s)" in known.output
