"""Fixtures: grpcio and grpc-go client processes and gRPC demo backends, beside the envoy
package's control plane (a ControlPlane fed by a MemorySource on free ports) and Envoys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.go import go_client_binary, interop_client_binary, interop_server_binary
from tests.fixtures.plane import envoy, plane
from tests.harness.grpc_clients import SERVICE, ClientProcesses, ClientStarter, GrpcClient
from tests.harness.plane import Plane, running_backends
from xdscp.clients import XdsServer, grpc_bootstrap
from xdscp.demo.backend import Backend, BackendConfig

__all__ = [
    "envoy",
    "go_client_binary",
    "grpc_backends",
    "grpc_client",
    "interop_client_binary",
    "interop_server_binary",
    "plane",
]


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
    plane: Plane,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[ClientStarter]:
    """Start a grpcio ("python") or grpc-go ("go") client process for `xds:///web`; with
    `trace=True` its stderr, with the policy it builds, is kept (`GrpcClient.log()`); with
    `ready=False` its first call may fail (it is started once that call ended)."""
    clients = ClientProcesses(lambda: _go_binary(request))

    async def start(
        kind: str = "python",
        node_id: str = "",
        service: str = SERVICE,
        *,
        trace: bool = False,
        ready: bool = True,
    ) -> GrpcClient:
        node_id = node_id or f"{kind}-{len(clients.started)}"
        bootstrap = grpc_bootstrap(node_id, (XdsServer("127.0.0.1", plane.plane.xds_port),))
        stderr = tmp_path / f"{node_id}.stderr" if trace else None
        return await clients.start(kind, bootstrap, service=service, stderr=stderr, answered=ready)

    try:
        yield start
    finally:
        await clients.stop()


@pytest.fixture
async def grpc_backends() -> AsyncIterator[list[Backend]]:
    """Four gRPC-only demo backends b0..b3 (/xdscp.demo.Echo/Who answers the name)."""
    async with running_backends([BackendConfig(f"b{i}", http_port=-1) for i in range(4)]) as bs:
        yield bs
