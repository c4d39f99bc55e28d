"""Fixtures: grpcio and grpc-go client processes and gRPC demo backends, beside the envoy
package's control plane (a ControlPlane fed by a MemorySource on free ports) and Envoys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Reused as they are (fixtures must be importable names in this conftest).
from tests.integration.envoy.conftest import Plane, envoy, plane, running_backends  # noqa: F401
from tests.integration.grpc.harness import SERVICE, ClientStarter, GrpcClient
from xdscp.clients import XdsServer, grpc_bootstrap
from xdscp.demo.backend import Backend, BackendConfig

ROOT = Path(__file__).resolve().parents[3]
GO_MODULE = ROOT / "tests" / "interop" / "go" / "xdsclient"


@pytest.fixture(scope="session")
def go_client_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The grpc-go client (tests/interop/go/xdsclient), built once; skip without Go."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("no `go` on PATH: the grpc-go client tests need the Go toolchain")
    binary = tmp_path_factory.mktemp("go") / "xdsclient"
    subprocess.run(
        [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."],
        cwd=GO_MODULE, check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    return str(binary)


def _command(kind: str, target: str, go_binary: str | None) -> list[str]:
    if kind == "python":
        return [sys.executable, "-m", "tests.integration.grpc.client", target]
    assert go_binary is not None
    return [go_binary, target]


# What makes each client log the balancing policy its channel builds for a cluster: grpcio's
# cds_lb tracer prints the child policy config, grpc-go at info level the policies it creates.
TRACE_ENV = {
    "python": {"GRPC_TRACE": "cds_lb", "GRPC_VERBOSITY": "info"},
    "go": {"GRPC_GO_LOG_SEVERITY_LEVEL": "info", "GRPC_GO_LOG_VERBOSITY_LEVEL": "2"},
}


def _go_binary(request: pytest.FixtureRequest) -> str:
    """The grpc-go client binary, which the test must have requested as a fixture: building it
    here, on the event loop that also runs the control plane, would block xDS for the whole
    build (a minute on a fresh clone) and make every client started beside it miss its
    first-call deadline."""
    assert "go_client_binary" in request.fixturenames, (
        "request the go_client_binary fixture (it is built before the test's loop runs)"
    )
    binary: str = request.getfixturevalue("go_client_binary")
    return binary


@pytest.fixture
async def grpc_client(
    plane: Plane,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[ClientStarter]:
    """Start a grpcio ("python") or grpc-go ("go") client process for `xds:///web`; with
    `trace=True` its stderr, with the policy it builds, is kept (`GrpcClient.log()`)."""
    started: list[GrpcClient] = []

    async def start(
        kind: str = "python", node_id: str = "", service: str = SERVICE, *, trace: bool = False
    ) -> GrpcClient:
        go_binary = _go_binary(request) if kind == "go" else None
        node_id = node_id or f"{kind}-{len(started)}"
        bootstrap = grpc_bootstrap(node_id, (XdsServer("127.0.0.1", plane.plane.xds_port),))
        env = {**os.environ, "GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(bootstrap)}
        env.pop("GRPC_XDS_BOOTSTRAP", None)
        stderr = tmp_path / f"{node_id}.stderr" if trace else None
        with stderr.open("wb") if stderr else contextlib.nullcontext() as sink:
            process = await asyncio.create_subprocess_exec(
                *_command(kind, f"xds:///{service}", go_binary),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=sink,
                env={**env, **TRACE_ENV[kind]} if trace else env, cwd=ROOT,
            )  # fmt: skip
        client = GrpcClient(kind, node_id, process, stderr)
        started.append(client)
        await client.ready()
        return client

    try:
        yield start
    finally:
        for client in started:
            await client.stop()


@pytest.fixture
async def grpc_backends() -> AsyncIterator[list[Backend]]:
    """Four gRPC-only demo backends b0..b3 (/xdscp.demo.Echo/Who answers the name)."""
    async with running_backends([BackendConfig(f"b{i}", http_port=-1) for i in range(4)]) as bs:
        yield bs
