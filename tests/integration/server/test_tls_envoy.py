"""A real Envoy, started from `xdscp bootstrap envoy --tls-ca [--tls-cert --tls-key]
--locality`, against a real `xdscp serve --tls-cert --tls-key [--tls-client-ca]`: it gets its
clusters over TLS and proxies a request; its node carries the locality."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.plane import backends  # noqa: F401 - the fixture
from tests.harness.certs import make_tls_files
from tests.harness.plane import aget
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
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

pytestmark = pytest.mark.envoy
WITHIN_S = 20.0
LOCALITY = {"region": "eu-west1", "zone": "eu-west1-b", "sub_zone": "rack-3"}


async def _until_in_sync(served: Served, node_id: str) -> dict[str, Any]:
    """xdscp's /debug/nodes entry once the node has ACKed CDS, EDS, LDS and RDS."""
    async with asyncio.timeout(WITHIN_S):
        while True:
            entry = await asyncio.to_thread(node_status, served, node_id)
            types = entry.get("types", {})
            if len(types) == 4 and all(t["in_sync"] for t in types.values()):
                return entry
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
async def test_envoy_from_the_tls_bootstrap_proxies_through_xdscp_over_tls(
    tmp_path: Path,
    backends: list[Backend],  # noqa: F811 - the fixture imported above
    mutual: bool,
) -> None:
    """Envoy's ADS connection is TLS (mutual TLS: it presents the client certificate xdscp
    requires), it ACKs every type, its listener proxies `Host: web` to the backend, and its
    node has the locality given to the bootstrap (Envoy's /server_info, xdscp's
    /debug/nodes)."""
    files = make_tls_files(tmp_path / "certs")
    listener = free_port()
    static = static_file(tmp_path / "services.yaml", [("127.0.0.1", backends[0].http_port)])
    flags = ("--static", str(static), "--listener", f"127.0.0.1:{listener}")
    with serve(tmp_path / "xdscp", *flags, *tls_flags(files, mutual=mutual)) as served:
        node_id = f"edge-{'mtls' if mutual else 'tls'}"
        document = await asyncio.to_thread(
            bootstrap, "envoy", "--node-id", node_id, "--xds", f"127.0.0.1:{served.xds_port}",
            "--admin-port", "0", "--locality", "eu-west1/eu-west1-b/rack-3",
            *client_flags(files, mutual=mutual),
        )  # fmt: skip
        envoy = EnvoyProcess(document, tmp_path / "envoy")
        await asyncio.to_thread(envoy.start)
        try:
            entry = await _until_in_sync(served, node_id)
            assert entry["locality"] == LOCALITY  # what xdscp saw in the node
            assert await aget(listener, "web") == (200, backends[0].config.name)
            info = json.loads(await asyncio.to_thread(envoy.admin, "/server_info"))
            assert info["node"]["locality"] == LOCALITY
            stats = await asyncio.to_thread(envoy.admin, "/stats?filter=xdscp_xds.ssl.handshake")
            handshakes = re.search(r"cluster\.xdscp_xds\.ssl\.handshake: (\d+)", stats)
            assert handshakes, stats
            assert int(handshakes[1]) >= 1, stats  # ADS went over TLS
        finally:
            envoy.stop()
