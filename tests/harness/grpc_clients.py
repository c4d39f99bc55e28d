"""Driving proxyless gRPC client processes and reading xdscp's view of them.

Each client (grpcio: tests/harness/grpc_client.py; grpc-go: tests/interop/go/xdsclient)
is its own process, because gRPC reads its xDS bootstrap once per process. Both answer JSON
commands on stdin with one JSON line on stdout (the protocol is in client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from tests.harness.paths import ROOT
from tests.harness.plane import Plane, plane_admin
from xdscp.demo.backend import WHO_METHOD, Backend
from xdscp.model import BalancingPolicy, Endpoint, Service

SERVICE = "web"

# What makes each client log the balancing policy its channel builds for a cluster: grpcio's
# cds_lb tracer prints the child policy config, grpc-go at info level the policies it creates.
TRACE_ENV = {
    "python": {"GRPC_TRACE": "cds_lb", "GRPC_VERBOSITY": "info"},
    "go": {"GRPC_GO_LOG_SEVERITY_LEVEL": "info", "GRPC_GO_LOG_VERBOSITY_LEVEL": "2"},
}


class GrpcClient:
    """One running client process: `await call(n=100)` sends a command, returns its result."""

    def __init__(
        self,
        kind: str,
        node_id: str,
        process: asyncio.subprocess.Process,
        stderr: Path | None = None,
    ) -> None:
        self.kind, self.node_id, self._process, self._stderr = kind, node_id, process, stderr

    def log(self) -> str:
        """What the client wrote to stderr so far (started with trace=True)."""
        assert self._stderr is not None, "start the client with trace=True"
        return self._stderr.read_text(errors="replace")

    async def _line(self, within: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        async with asyncio.timeout(within):
            line = await self._process.stdout.readline()
        if not line:
            raise AssertionError(f"{self.kind} client {self.node_id} exited")
        result: dict[str, Any] = json.loads(line)
        return result

    async def ready(self, *, answered: bool = True) -> None:
        """Wait for the first call (made while the xDS resources arrive) to end, and (when
        `answered`) to have succeeded."""
        first = await self._line(30)
        assert first["ready"] or not answered, (self.kind, first)

    async def call(self, within: float = 60, **command: object) -> dict[str, Any]:
        """Run one command (`n`, `concurrency`, `header` + `keys`)."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()
        return await self._line(within)

    async def counts(self, n: int, concurrency: int = 1) -> Counter[str]:
        """`n` calls without errors; how many each backend answered."""
        result = await self.call(n=n, concurrency=concurrency)
        assert not result["errors"], result["errors"][:3]
        return Counter(result["counts"])

    async def stop(self) -> None:
        """Close stdin (the client exits), kill it if it does not."""
        if self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


ClientStarter = Callable[..., Awaitable[GrpcClient]]


def _command(kind: str, target: str, go_binary: str | None) -> list[str]:
    if kind == "python":
        return [sys.executable, "-m", "tests.harness.grpc_client", target]
    assert go_binary is not None
    return [go_binary, target]


class ClientProcesses:
    """The grpcio ("python") and grpc-go ("go") client processes a test starts; `stop()`
    ends them all (a fixture's teardown)."""

    def __init__(self, go_binary: Callable[[], str]) -> None:
        self._go_binary = go_binary  # asked only when a "go" client starts
        self.started: list[GrpcClient] = []

    async def start(
        self,
        kind: str,
        bootstrap: dict[str, Any],
        *,
        service: str = SERVICE,
        stderr: Path | None = None,
        answered: bool = True,
    ) -> GrpcClient:
        """A client of `xds:///service` given `bootstrap` (inline), once its first call
        ended (succeeded, unless not `answered`); with `stderr`, it traces the policy it
        builds there (`TRACE_ENV`)."""
        go_binary = self._go_binary() if kind == "go" else None
        env = {**os.environ, "GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(bootstrap)}
        env.pop("GRPC_XDS_BOOTSTRAP", None)
        with stderr.open("wb") if stderr else contextlib.nullcontext() as sink:
            process = await asyncio.create_subprocess_exec(
                *_command(kind, f"xds:///{service}", go_binary),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=sink,
                env={**env, **TRACE_ENV[kind]} if stderr else env, cwd=ROOT,
            )  # fmt: skip
        client = GrpcClient(kind, bootstrap["node"]["id"], process, stderr)
        self.started.append(client)
        await client.ready(answered=answered)
        return client

    async def stop(self) -> None:
        """Stop every client started."""
        for client in self.started:
            await client.stop()


@contextlib.asynccontextmanager
async def who_through_envoy(plane: Plane) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A channel to the plane's Envoy listener (authority `web`); yields a call that asks
    which backend answers (raises `grpc.aio.AioRpcError` when the RPC fails)."""
    address, options = f"127.0.0.1:{plane.listener_port}", [("grpc.default_authority", "web")]
    async with grpc.aio.insecure_channel(address, options) as channel:
        who = channel.unary_unary(
            WHO_METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )

        async def ask() -> str:
            return str((await who(wrappers_pb2.StringValue(), timeout=2)).value)

        yield ask


def grpc_service(backends: list[Backend], weights: tuple[int, ...], **policy: Any) -> Service:
    """Service `web` over the first len(weights) backends' gRPC ports."""
    endpoints = tuple(
        Endpoint("127.0.0.1", b.grpc_port, weight=w)
        for b, w in zip(backends, weights, strict=False)
    )
    return Service(SERVICE, endpoints, BalancingPolicy(**policy))


async def node(plane: Plane, node_id: str) -> dict[str, Any]:
    """xdscp's status entry for one connected node ({} while it is not connected)."""
    nodes = [n for n in await plane_admin(plane, "/debug/nodes") if n["node"] == node_id]
    return dict(nodes[0]) if nodes else {}


async def in_sync(
    plane: Plane,
    node_id: str,
    *,
    since: dict[str, Any] | None = None,
    changed: str | None = None,
    within: float = 10.0,
) -> dict[str, Any]:
    """Wait until the node has ACKed every version sent to it, with no NACK on record; with
    `since` (an earlier status entry), also until an ACKed version differs from it (of type
    `changed`, e.g. "ClusterLoadAssignment", when given). Returns the node's status entry."""
    old = {t: v["acked_version"] for t, v in since["types"].items()} if since else {}
    deadline = time.monotonic() + within
    while True:
        entry = await node(plane, node_id)
        assert not entry.get("last_nack"), entry["last_nack"]
        types = entry.get("types", {})
        synced = len(types) == 4 and all(t["in_sync"] for t in types.values())
        moved = not old or any(
            types[t]["acked_version"] != old[t] for t in ([changed] if changed else old)
        )
        if synced and moved:
            return entry
        assert time.monotonic() < deadline, f"{node_id} not in sync: {entry}"
        await asyncio.sleep(0.005)
