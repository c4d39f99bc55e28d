"""The checks themselves (the I/O): gRPC health, HTTP GET, TCP connect.

- gRPC: `grpc.health.v1.Health/Check` with the check's `service_name` (grpcio-health-checking's
  stubs) on one channel per endpoint, kept between checks as Envoy keeps its connection;
  healthy when the answer is SERVING.
- HTTP: `GET <path>` over HTTP/1.1 on a new connection (`connection: close`); healthy on any
  2xx status. Written on asyncio streams: only the status line is read, and the project has
  no HTTP client dependency (the admin endpoint is its own small server too).
- TCP: healthy when a connection opens.

Each check is bounded by the check's timeout; every failure is a result, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xdscp.health.targets import Target, TargetKey
from xdscp.model import HealthCheckKind

_SERVING = health_pb2.HealthCheckResponse.SERVING
MAX_STATUS_LINE = 1024


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check: passed or not, how long it took, and why it failed."""

    ok: bool
    seconds: float
    detail: str = ""


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class Prober:
    """Runs one check of a target; keeps the gRPC channels (close with `forget`/`close`)."""

    def __init__(self) -> None:
        self._channels: dict[TargetKey, tuple[str, grpc.aio.Channel]] = {}

    async def check(self, target: Target) -> ProbeResult:
        """Run the target's check once, within its timeout."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.check.timeout):
                detail = await self._run(target)
        except TimeoutError:
            detail = f"timed out after {target.check.timeout}s"
        except OSError as exc:
            detail = f"{type(exc).__name__}: {exc.strerror or exc}"
        return ProbeResult(not detail, time.perf_counter() - started, detail)

    async def _run(self, target: Target) -> str:
        kind = target.check.kind
        if kind is HealthCheckKind.GRPC:
            return await self._grpc(target)
        if kind is HealthCheckKind.HTTP:
            return await _http(target)
        return await _tcp(target)

    async def _grpc(self, target: Target) -> str:
        address = f"{_host(target.address)}:{target.port}"
        known = self._channels.get(target.key)
        if known is None or known[0] != address:
            await self.forget(target.key)
            known = (address, grpc.aio.insecure_channel(address))
            self._channels[target.key] = known
        stub = health_pb2_grpc.HealthStub(known[1])
        request = health_pb2.HealthCheckRequest(service=target.check.service_name)
        try:
            response = await stub.Check(request)
        except grpc.aio.AioRpcError as exc:
            return f"grpc {exc.code().name}: {exc.details()}"
        if response.status != _SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return f"grpc health {status}"
        return ""

    async def forget(self, key: TargetKey) -> None:
        """Close the channel kept for `key` (the target went away or moved)."""
        known = self._channels.pop(key, None)
        if known is not None:
            await known[1].close()

    async def close(self) -> None:
        """Close every channel."""
        for key in list(self._channels):
            await self.forget(key)


async def _tcp(target: Target) -> str:
    _, writer = await asyncio.open_connection(target.address, target.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ""


async def _http(target: Target) -> str:
    reader, writer = await asyncio.open_connection(target.address, target.port)
    try:
        request = (
            f"GET {target.check.path} HTTP/1.1\r\nhost: {_host(target.address)}:{target.port}\r\n"
            "user-agent: xdscp-health\r\naccept: */*\r\nconnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return http_status_problem(line[:MAX_STATUS_LINE])


def http_status_problem(line: bytes) -> str:
    """Empty when an HTTP/1.x status line says 2xx, else what is wrong with it."""
    parts = line.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    is_code = len(code) == 3 and code.isascii() and code.isdigit()
    if not parts[0].startswith("HTTP/1.") or not is_code:
        return f"http: not an HTTP/1.x status line: {line[:80]!r}"
    status = int(code)
    return "" if 200 <= status < 300 else f"http status {status}"
