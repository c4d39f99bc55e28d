"""`xdscp serve` as users run it, and its discovery services spoken to over real gRPC."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.cluster.v3 import cds_pb2_grpc
from envoy.service.discovery.v3 import discovery_pb2

from tests.harness.files import rewrite
from tests.harness.serve import LogEvents, get_json
from xdscp.cache import TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.server import StreamEvent, StreamEventKind
from xdscp.sources.memory import MemorySource
from xdscp.testing import free_port, wait_until

SERVICES = """
services:
  web:
    policy: {lb: weighted_round_robin}
    endpoints:
      - {address: 10.0.0.1, port: 80, weight: %d}
"""


def test_serve_needs_a_source() -> None:
    """Without any source, serve refuses to start and says which flags give one."""
    done = subprocess.run(
        [sys.executable, "-m", "xdscp", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--static FILE" in done.stderr


def test_serve_static_file_reload_keeps_last_good_and_stops_on_sigterm(tmp_path: Path) -> None:
    """Ready after the file is read; a change is re-translated; a broken file, read (its
    error logged) at the next poll and again on SIGHUP, keeps the last good services;
    SIGTERM stops the process cleanly."""
    path = tmp_path / "services.yaml"
    path.write_text(SERVICES % 1)
    admin = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--static", str(path),
         "--xds", "127.0.0.1:0", "--admin", f"127.0.0.1:{admin}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    logs = LogEvents(proc.stderr)
    base = f"http://127.0.0.1:{admin}"
    snapshots = f"{base}/status/snapshots"
    try:
        wait_until(lambda: get_json(f"{base}/ready")[0] == 200)
        first = get_json(snapshots)[1]["envoy"]["ClusterLoadAssignment"]
        rewrite(path, SERVICES % 5)
        wait_until(lambda: get_json(snapshots)[1]["envoy"]["ClusterLoadAssignment"] != first)
        second = get_json(snapshots)[1]["envoy"]
        rewrite(path, "services: {web: {endpoints: [{address: not-an-ip, port: 0}]}}")
        logs.wait("static_services_invalid")  # the bad file has been read and refused
        assert get_json(snapshots)[1]["envoy"] == second
        assert get_json(f"{base}/ready")[0] == 200
        proc.send_signal(signal.SIGHUP)  # re-read now; never the default "terminate"
        logs.wait("reload_requested")
        logs.wait("static_services_invalid", count=2)  # re-read, and refused again
        assert proc.poll() is None
        assert get_json(snapshots)[1]["envoy"] == second
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    err = logs.text()
    assert proc.returncode == 0, err
    assert logs.count("control_plane_stopped") == 1
    assert f"{path}:1: services.web.endpoints[0].address: must be an IPv4" in err  # not PyYAML's


async def test_standalone_cds_and_delta_over_grpc() -> None:
    """The standalone CDS service answers a wildcard request and stays quiet after the ACK
    (observers see push, ACK, push); its delta variant sends the cluster, then only its
    removal (`removed_resources`)."""
    source = MemorySource({"web": Service("web", (Endpoint("10.0.0.1", 80),))})
    events: list[StreamEvent] = []
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)),
        sources=[source],
        observers=[events.append],
    )
    await plane.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
            stub = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel)
            node = base_pb2.Node(id="cds-only", user_agent_name="envoy")
            call = stub.StreamClusters()
            await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER))
            response = await call.read()
            assert response.type_url == TypeUrl.CLUSTER
            assert len(response.resources) == 1
            assert response.control_plane.identifier.startswith("xdscp")
            ack = discovery_pb2.DiscoveryRequest(
                type_url=TypeUrl.CLUSTER, version_info=response.version_info,
                response_nonce=response.nonce,
            )  # fmt: skip
            await call.write(ack)
            for _ in range(200):  # the server has read the ACK before the next change
                if any(e.kind is StreamEventKind.ACK for e in events):
                    break
                await asyncio.sleep(0.01)
            observed = plane.metrics_registry.get_sample_value(
                "xdscp_push_ack_seconds_count", {"type": "Cluster"}
            )
            assert observed == 1  # the ACK of the latest push is timed
            source.set({})  # the cluster goes away: the wildcard subscriber is told
            update = await call.read()
            assert len(update.resources) == 0
            assert int(update.nonce) > int(response.nonce)
            seen = [(e.kind, e.nonce, e.record.node.id) for e in events]
            assert seen == [
                ("push", response.nonce, "cds-only"),
                ("ack", response.nonce, "cds-only"),
                ("push", update.nonce, "cds-only"),
            ]
            call.cancel()
            source.set({"web": Service("web", (Endpoint("10.0.0.1", 80),))})
            delta = stub.DeltaClusters()
            first = discovery_pb2.DeltaDiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER)
            await delta.write(first)
            given = await delta.read()
            assert [r.name for r in given.resources] == ["web"]
            assert given.resources[0].version
            assert not given.removed_resources
            await delta.write(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=TypeUrl.CLUSTER, response_nonce=given.nonce
                )
            )
            source.set({})
            gone = await delta.read()
            assert (list(gone.resources), list(gone.removed_resources)) == ([], ["web"])
            delta.cancel()
    finally:
        await plane.stop()


async def test_mutual_tls_on_the_xds_port(tmp_path: Path) -> None:
    """With TLS and a client CA, a client presenting a signed certificate is served; one
    without a certificate is refused."""
    from tests.harness.certs import make_tls_files
    from xdscp.plane import XdsTls

    files = make_tls_files(tmp_path)
    tls = XdsTls(str(files.server_cert), str(files.server_key), str(files.ca))
    source = MemorySource({"web": Service("web", (Endpoint("10.0.0.1", 80),))})
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0, tls=tls)), sources=[source]
    )
    await plane.start()
    request = discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id="tls", user_agent_name="envoy"), type_url=TypeUrl.CLUSTER
    )
    ca = files.ca.read_bytes()
    try:
        good = grpc.ssl_channel_credentials(
            ca, files.client_key.read_bytes(), files.client_cert.read_bytes()
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{plane.xds_port}", good) as channel:
            call = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel).StreamClusters()
            await call.write(request)
            assert len((await call.read()).resources) == 1
            call.cancel()
        anonymous = grpc.ssl_channel_credentials(ca)
        async with grpc.aio.secure_channel(f"127.0.0.1:{plane.xds_port}", anonymous) as channel:
            stub = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.FetchClusters(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await plane.stop()


async def test_status_command_shows_each_node() -> None:
    """`xdscp status` prints one row per connected node with its accepted CDS version; it
    explains itself when nothing listens at the admin address."""
    from click.testing import CliRunner

    from xdscp.cli import main

    source = MemorySource({"web": Service("web", (Endpoint("10.0.0.1", 80),))})
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)), sources=[source]
    )
    await plane.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
            call = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel).StreamClusters()
            node = base_pb2.Node(id="edge-42", user_agent_name="envoy")
            await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER))
            response = await call.read()
            ack = discovery_pb2.DiscoveryRequest(
                type_url=TypeUrl.CLUSTER, version_info=response.version_info,
                response_nonce=response.nonce,
            )  # fmt: skip
            await call.write(ack)
            admin = f"127.0.0.1:{plane.admin.port}"
            result = None
            for _ in range(100):
                result = await asyncio.to_thread(
                    CliRunner().invoke, main, ["status", "--admin", admin]
                )
                if response.version_info[:8] in result.output:
                    break
                await asyncio.sleep(0.02)
            assert result is not None
            assert result.exit_code == 0, result.output
            assert "edge-42" in result.output
            assert response.version_info[:8] in result.output
            call.cancel()
    finally:
        await plane.stop()
    down = await asyncio.to_thread(CliRunner().invoke, main, ["status", "--admin", admin])
    assert down.exit_code == 1
    assert "is `xdscp serve` running there?" in down.output
