"""Interop with the Go code the grpc-go naming format comes from (go.etcd.io/etcd/client/v3).

The Go module in tests/interop/go/etcdnaming uses `naming/endpoints` (the Manager) and
`naming/resolver` exactly as Go users do. Both directions are proven against a real etcd.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.go import build_go
from tests.harness.paths import ROOT
from xdscp.etcd import EtcdClient
from xdscp.model import ReportedLoad
from xdscp.registry import GrpcGoTarget, RegistryLayout
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, free_port, running, wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.go]
MODULE = ROOT / "tests" / "interop" / "go" / "etcdnaming"
# What a Go registrant writes: xdscp's fields in Metadata, the endpoint's own load too
METADATA = '{"weight":3,"zone":"z1","load":{"utilization":0.5,"rps":10,"at":1765000000}}'


@pytest.fixture(scope="session")
def go_tool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The built Go helper (`go build`, reusing the module cache); skip without Go."""
    return build_go(tmp_path_factory, MODULE, "the Go interop tests")


def go_run(tool: str, *args: str) -> str:
    result = subprocess.run([tool, *args], check=True, capture_output=True, timeout=60, text=True)
    return result.stdout


@pytest.fixture
def health_servers(go_tool: str) -> Iterator[list[int]]:
    """Two Go gRPC health servers on free loopback ports."""
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen([go_tool, "serve", "-addr", f"127.0.0.1:{p}"], stdout=subprocess.PIPE)
        for p in ports
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith(b"serving")
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def go_async(tool: str, *args: str) -> None:
    """Run the Go helper to completion without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(tool, *args)
    assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_what_the_go_manager_writes_xdscp_discovers(
    etcd_server: EtcdServer, go_tool: str
) -> None:
    """Go adds (with and without a lease), deletes and lease expiry all reach the registry."""
    url = etcd_server.url
    layout = RegistryLayout(grpc_targets=(GrpcGoTarget.parse("greeter"),))
    async with EtcdClient(etcd_server.config()) as client:
        source, recorder = EtcdRegistrySource(client, layout, min_interval=0.0), Recorder()
        async with running(source, recorder):
            await go_async(go_tool, "add", "-etcd", url, "-target", "greeter", "-id", "a",
                           "-addr", "127.0.0.1:7001")  # fmt: skip
            await go_async(go_tool, "add", "-etcd", url, "-target", "greeter2", "-id", "x",
                           "-addr", "127.0.0.1:7009")  # fmt: skip
            leased = await asyncio.create_subprocess_exec(
                go_tool, "add", "-etcd", url, "-target", "greeter", "-id", "b",
                "-addr", "127.0.0.1:7002", "-ttl", "2", "-metadata", METADATA,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                assert leased.stdout is not None
                assert await leased.stdout.readline() == b"ready\n"
                want = {"greeter": ["127.0.0.1:7001", "127.0.0.1:7002"]}
                await wait_for(lambda: recorder.last == want)
                second = recorder.sets[-1]["greeter"].endpoints[1]
                assert (second.weight, second.locality.zone) == (3, "z1")
                assert second.load == ReportedLoad(0.5, 10.0, 1_765_000_000.0)
                await go_async(go_tool, "del", "-etcd", url, "-target", "greeter", "-id", "a")
                await wait_for(lambda: recorder.last == {"greeter": ["127.0.0.1:7002"]})
            finally:
                assert leased.stdin is not None
                leased.stdin.close()  # exits without revoking: the lease must expire
                await asyncio.wait_for(leased.wait(), 10)
            await wait_for(lambda: recorder.last == {"greeter": []}, limit=15)


def test_what_xdscp_registers_the_go_resolver_resolves_and_calls(
    etcd_server: EtcdServer, go_tool: str, health_servers: list[int]
) -> None:
    """`xdscp register --format grpc-go` entries (one carrying its load in `Metadata`) are
    resolved by the Go resolver and called."""
    code = (
        "from xdscp.logs import configure_logging; configure_logging('warning', 'json');"
        "from xdscp.cli.registry import register_command; register_command()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDSCP_")}
    registrars = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "greeter",
                f"127.0.0.1:{port}",
                "--format",
                "grpc-go",
                "--ttl",
                "5",
                "--etcd",
                etcd_server.url,
                *(["--utilization", "0.5", "--rps", "10"] if i == 0 else []),
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        for i, port in enumerate(health_servers)
    ]
    try:
        lines = []
        for registrar in registrars:
            assert registrar.stdout is not None
            lines.append(registrar.stdout.readline())
            assert lines[-1].startswith(b"registered greeter/")
        assert b'"Metadata":{"load":{"utilization":0.5,"rps":10.0,"at":' in lines[0], lines[0]
        out = go_run(go_tool, "resolve", "-etcd", etcd_server.url, "-target", "greeter",
                     "-calls", "20", "-expect", "2")  # fmt: skip
        assert out.split() == sorted(f"127.0.0.1:{port}" for port in health_servers)
    finally:
        for registrar in registrars:
            registrar.terminate()
            registrar.wait(timeout=10)
