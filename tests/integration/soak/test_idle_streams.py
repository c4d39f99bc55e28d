"""Soak: every kind of client xdscp serves, bootstrapped by xdscp, idle on one `xdscp serve`
for longer than every keepalive and timeout involved, keeps its one stream; then one change
reaches and is ACKed by each.

Short tests missed that idle Envoys lost their ADS stream every ~80 s (grpc's default ping
policing against the bootstrap's 15 s keepalive), so this one waits, all clients at once:
an Envoy on state-of-the-world ADS, one on delta ADS, a grpcio and a grpc-go client. The
soak lasts 2.5 times the longest window in which a keepalive rule or a timeout could end an
idle stream (computed from the constants, ~3 minutes); `XDSCP_SOAK_SECONDS` makes it longer
(e.g. 900 to also outlast the gRPC clients' own 5-minute pings).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.harness.grpc_clients import ClientProcesses
from tests.harness.plane import running_backends
from tests.harness.serve import LogEvents, get_json
from tests.harness.soak import SOAK_S
from xdscp.cli import main
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_until

NODES = {"soak-envoy-sotw": "envoy", "soak-envoy-delta": "envoy", "soak-python": "grpc",
         "soak-go": "grpc"}  # fmt: skip
SERVICES = "services:\n  web:\n    endpoints:\n{}"
CONNECTIONS = "cluster.xdscp_xds.upstream_cx_total"  # Envoy's connections to xdscp, ever
ENDPOINT = "      - {{address: 127.0.0.1, port: {}}}\n"

pytestmark = [
    pytest.mark.envoy, pytest.mark.grpc, pytest.mark.go, pytest.mark.slow,
    pytest.mark.timeout(SOAK_S + 600), pytest.mark.usefixtures("go_client_binary"),
]  # fmt: skip


class Serve:
    """A running `xdscp serve` on free loopback ports, fed by a static file."""

    def __init__(self, services: Path) -> None:
        self.services = services
        self.xds, self.admin = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--static",
             str(services), "--xds", f"127.0.0.1:{self.xds}", "--admin",
             f"127.0.0.1:{self.admin}", "--listener", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.logs = LogEvents(self.proc.stderr)

    def get(self, path: str) -> Any:
        status, body = get_json(f"http://127.0.0.1:{self.admin}{path}")
        assert status == 200, (path, status, body)
        return body

    def metric(self, name: str) -> dict[str, float]:
        """Every sample of `name` on /metrics: {labels: value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                labels, _, value = line.rpartition(" ")
                samples[labels[len(name) :]] = float(value)
        return samples

    def nodes(self) -> dict[str, dict[str, Any]]:
        """xdscp's status entry per connected node id (one stream each, or AssertionError)."""
        entries = self.get("/debug/nodes")
        ids = [entry["node"] for entry in entries]
        assert len(ids) == len(set(ids)), ids
        return {entry["node"]: entry for entry in entries}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    async with running_backends([BackendConfig(f"b{i}", http_port=-1) for i in range(2)]) as bs:
        yield bs


@pytest.fixture
def serve(tmp_path: Path, backends: list[Backend]) -> Iterator[Serve]:
    services = tmp_path / "services.yaml"
    services.write_text(SERVICES.format(ENDPOINT.format(backends[0].grpc_port)))
    running = Serve(services)
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{running.admin}/readyz")[0] == 200, 60)
        yield running
    finally:
        running.stop()


def _bootstrap(kind: str, node_id: str, xds_port: int, *args: str) -> dict[str, Any]:
    """What `xdscp bootstrap KIND` prints, as users get it."""
    command = ["bootstrap", kind, "--node-id", node_id, "--xds", f"127.0.0.1:{xds_port}", *args]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _synced(entry: dict[str, Any], since: dict[str, Any] | None = None) -> bool:
    """Every type the node was sent is ACKed; with `since`, its endpoints moved on."""
    types = entry.get("types", {})
    if len(types) != 4 or not all(t["in_sync"] for t in types.values()) or entry.get("last_nack"):
        return False
    if since is None:
        return True
    cla = "ClusterLoadAssignment"
    return bool(types[cla]["acked_version"] != since["types"][cla]["acked_version"])


def _all_synced(serve: Serve, since: dict[str, dict[str, Any]] | None = None) -> bool:
    nodes = serve.nodes()
    return set(nodes) == set(NODES) and all(
        _synced(nodes[n], since[n] if since else None) for n in NODES
    )


async def test_idle_clients_keep_one_stream_and_take_the_next_change(
    serve: Serve, backends: list[Backend], tmp_path: Path, go_client_binary: str
) -> None:
    """Two Envoys (SotW, delta), a grpcio and a grpc-go client, idle for SOAK_S: each held
    exactly one stream throughout (one `stream_opened` per node, no `stream_closed`, the
    close counter absent, the same stream in xdscp's status, one xDS connection per Envoy),
    and each received and ACKed the one change made after."""
    envoys = [
        EnvoyProcess(_bootstrap("envoy", node, serve.xds, "--admin-port", "0", flag),
                     tmp_path / node)
        for node, flag in (("soak-envoy-sotw", "--sotw"), ("soak-envoy-delta", "--delta"))
    ]  # fmt: skip
    clients = ClientProcesses(lambda: go_client_binary)
    try:
        await asyncio.gather(*(asyncio.to_thread(envoy.start) for envoy in envoys))
        await asyncio.gather(
            clients.start("python", _bootstrap("grpc", "soak-python", serve.xds)),
            clients.start("go", _bootstrap("grpc", "soak-go", serve.xds)),
        )
        await asyncio.to_thread(wait_until, lambda: _all_synced(serve), 60)
        before = serve.nodes()

        await asyncio.sleep(SOAK_S)  # the soak itself: idle, nothing else happens

        second = ENDPOINT.format(backends[1].grpc_port)
        serve.services.write_text(SERVICES.format(ENDPOINT.format(backends[0].grpc_port) + second))
        await asyncio.to_thread(wait_until, lambda: _all_synced(serve, before), 60)
        after = serve.nodes()
        for node, kind in NODES.items():
            assert after[node]["connected_since"] == before[node]["connected_since"], node
            assert after[node]["client"] == kind
            opened = [r for r in serve.logs.records("stream_opened") if r["node"] == node]
            assert len(opened) == 1, (node, opened)
        assert serve.logs.records("stream_closed") == []
        assert serve.metric("xdscp_streams_closed_total") == {}
        assert serve.metric("xdscp_streams_opened_total") == {
            '{client="envoy"}': 2.0, '{client="grpc"}': 2.0,
        }  # fmt: skip
        for envoy in envoys:
            stats = await asyncio.to_thread(envoy.admin, f"/stats?filter=^{CONNECTIONS}$")
            assert stats.strip() == f"{CONNECTIONS}: 1", stats
    finally:
        await clients.stop()
        for envoy in envoys:
            envoy.stop()
