"""grpcio and grpc-go xDS clients whose bootstrap is `xdscp bootstrap grpc --tls-ca
[--tls-cert --tls-key] --locality`, against a real `xdscp serve --tls-cert --tls-key
[--tls-client-ca]`: both accept the `tls` channel creds (gRFC A65, no environment variable
needed), reach xdscp over TLS or mutual TLS and make RPCs that succeed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.certs import make_tls_files
from tests.harness.grpc_clients import ClientProcesses, GrpcClient
from tests.harness.tls import (
    Served,
    bootstrap,
    client_flags,
    node_status,
    serve,
    static_file,
    tls_flags,
)
from xdscp.demo.backend import Backend

pytestmark = pytest.mark.grpc
LOCALITY = {"region": "us-east1", "zone": "us-east1-b"}
WITHIN_S = 20.0

Starter = Callable[[str, dict[str, Any]], Awaitable[GrpcClient]]


@pytest.fixture
async def tls_client(request: pytest.FixtureRequest) -> AsyncIterator[Starter]:
    """Start a grpcio ("python") or grpc-go ("go") client of `xds:///web` with a bootstrap."""
    clients = ClientProcesses(lambda: str(request.getfixturevalue("go_client_binary")))
    try:
        yield clients.start
    finally:
        await clients.stop()


async def _until_in_sync(served: Served, node_id: str) -> dict[str, Any]:
    """xdscp's /debug/nodes entry once the client has ACKed all four types, no NACK."""
    async with asyncio.timeout(WITHIN_S):
        while True:
            entry = await asyncio.to_thread(node_status, served, node_id)
            assert not entry.get("last_nack"), entry
            types = entry.get("types", {})
            if len(types) == 4 and all(t["in_sync"] for t in types.values()):
                return entry
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
@pytest.mark.parametrize("kind", ["python", pytest.param("go", marks=pytest.mark.go)])
async def test_grpc_client_from_the_tls_bootstrap_makes_rpcs(
    tmp_path: Path,
    grpc_backends: list[Backend],
    tls_client: Starter,
    kind: str,
    mutual: bool,
) -> None:
    """The client reads the TLS bootstrap (mutual TLS: with its certificate, which xdscp
    requires), subscribes over TLS, ACKs every type (no NACK) and 20 RPCs succeed, spread
    over both backends; xdscp's /debug/nodes shows the node with the --locality given."""
    files = make_tls_files(tmp_path / "certs")
    endpoints = [("127.0.0.1", b.grpc_port) for b in grpc_backends[:2]]
    static = static_file(tmp_path / "services.yaml", endpoints)
    with serve(tmp_path / "xdscp", "--static", str(static), *tls_flags(files, mutual=mutual)) as s:
        node_id = f"{kind}-{'mtls' if mutual else 'tls'}"
        document = await asyncio.to_thread(
            bootstrap, "grpc", "--node-id", node_id, "--xds", f"127.0.0.1:{s.xds_port}",
            "--locality", "us-east1/us-east1-b", *client_flags(files, mutual=mutual),
        )  # fmt: skip
        (creds,) = document["xds_servers"][0]["channel_creds"]
        assert creds["type"] == "tls"
        assert document["node"]["locality"] == LOCALITY
        client = await tls_client(kind, document)
        entry = await _until_in_sync(s, node_id)
        assert entry["client"] == "grpc"
        assert entry["locality"] == LOCALITY  # the bootstrap's, as xdscp saw it
        result = await client.call(n=20)
        assert not result["errors"], result["errors"][:3]
        assert set(result["counts"]) == {b.config.name for b in grpc_backends[:2]}
