"""The checks themselves (the I/O): gRPC health, HTTP GET, TCP connect.

- gRPC: `grpc.health.v1.Health/Check` with the check's `service_name` (grpcio-health-checking's
  stubs) on one channel per endpoint, kept between checks as Envoy keeps its connection;
  healthy when the answer is SERVING.
- HTTP: `GET <path>` with aiohttp's client (one session, connections kept between checks as
  Envoy keeps its own; redirects not followed, as Envoy does not); healthy on any 2xx status.
  A malformed answer is a failed check with aiohttp's reason.
- TCP: healthy when a connection opens.

Each check is bounded by the check's timeout; every failure is a result, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xdscp.health.targets import Target, TargetKey
from xdscp.model import HealthCheckKind

_SERVING = health_pb2.HealthCheckResponse.SERVING
_HEADERS = {"user-agent": "xdscp-health", "accept": "*/*"}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check: passed or not, how long it took, and why it failed."""

    ok: bool
    seconds: float
    detail: str = ""


def _os_detail(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class Prober:
    """Runs one check of a target; keeps the gRPC channels (close with `forget`/`close`)."""

    def __init__(self) -> None:
        self._channels: dict[TargetKey, tuple[str, grpc.aio.Channel]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def check(self, target: Target) -> ProbeResult:
        """Run the target's check once, within its timeout."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.check.timeout):
                detail = await self._run(target)
        except TimeoutError:
            detail = f"timed out after {target.check.timeout}s"
        except aiohttp.ClientConnectorError as exc:  # an OSError: say the socket's own error
            detail = _os_detail(exc.os_error)
        except OSError as exc:
            detail = _os_detail(exc)
        except aiohttp.ClientError as exc:
            detail = f"http: {type(exc).__name__}: {exc}"
        return ProbeResult(not detail, time.perf_counter() - started, detail)

    async def _run(self, target: Target) -> str:
        kind = target.check.kind
        if kind is HealthCheckKind.GRPC:
            return await self._grpc(target)
        if kind is HealthCheckKind.HTTP:
            return await self._http(target)
        return await _tcp(target)

    async def _http(self, target: Target) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=_HEADERS)
        url = f"http://{_host(target.address)}:{target.port}{target.check.path}"
        async with self._session.get(url, allow_redirects=False) as response:
            status = response.status
        return "" if 200 <= status < 300 else f"http status {status}"

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
        """Close every channel and the HTTP session."""
        for key in list(self._channels):
            await self.forget(key)
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _tcp(target: Target) -> str:
    _, writer = await asyncio.open_connection(target.address, target.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ""
