"""The checks against real loopback servers: gRPC health, HTTP status, TCP connect; and the
stage checking on its own (no etcd), marking and restoring an endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from xdscp.health import (
    HealthMetrics,
    HealthOverlay,
    HealthStage,
    Prober,
    Target,
    TargetKey,
    Verdict,
)
from xdscp.model import BalancingPolicy, Endpoint, HealthCheck, Service
from xdscp.testing import free_port, wait_for


class HttpBackend:
    """Answers every request with `status` (changeable), or with `answer` verbatim when
    given (anything at all: junk, nothing, HTTP/2), then closes."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.status = 200
        self.answer = answer
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.requests += 1
            status = f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode()
            writer.write(status if self.answer is None else self.answer)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> HttpBackend:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def grpc_health() -> AsyncIterator[tuple[int, health_aio.HealthServicer]]:
    server = grpc.aio.server()
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, servicer
    finally:
        await server.stop(None)


def target(kind: str, port: int, **check: object) -> Target:
    return Target("web", "127.0.0.1", port, HealthCheck(kind=kind, timeout=2.0, **check))


async def test_grpc_health_serving_and_not_serving(
    grpc_health: tuple[int, health_aio.HealthServicer],
) -> None:
    """SERVING passes; NOT_SERVING and an unknown service name fail, saying why."""
    port, servicer = grpc_health
    await servicer.set("echo", health_pb2.HealthCheckResponse.SERVING)
    prober = Prober()
    try:
        assert (await prober.check(target("grpc", port, service_name="echo"))).ok
        await servicer.set("echo", health_pb2.HealthCheckResponse.NOT_SERVING)
        failed = await prober.check(target("grpc", port, service_name="echo"))
        assert not failed.ok
        assert "NOT_SERVING" in failed.detail
        unknown = await prober.check(target("grpc", port, service_name="nope"))
        assert "NOT_FOUND" in unknown.detail
    finally:
        await prober.close()


async def test_http_2xx_passes_anything_else_fails() -> None:
    """The status code decides; a refused connection fails too."""
    prober = Prober()
    try:
        async with HttpBackend() as backend:
            assert (await prober.check(target("http", backend.port, path="/health"))).ok
            backend.status = 503
            result = await prober.check(target("http", backend.port))
            assert (result.ok, result.detail) == (False, "http status 503")
        refused = await prober.check(target("http", free_port()))
    finally:
        await prober.close()
    assert not refused.ok
    assert "ConnectionRefused" in refused.detail


async def test_tcp_connect() -> None:
    """A listening port passes, a closed one fails."""
    prober = Prober()
    async with HttpBackend() as backend:
        assert (await prober.check(target("tcp", backend.port))).ok
    assert not (await prober.check(target("tcp", free_port()))).ok


async def test_local_stage_marks_and_restores_an_endpoint() -> None:
    """Without etcd the plane's own stage checks: after `unhealthy_threshold` failures the
    endpoint is served UNHEALTHY and the plane is told; after `healthy_threshold` successes
    it is back. Metrics follow."""
    metrics_registry = CollectorRegistry()
    changes: list[set[str]] = []
    overlay = HealthOverlay()
    stage = HealthStage(HealthMetrics(metrics_registry), overlay)

    def apply(verdicts: Sequence[tuple[TargetKey, Verdict | None]]) -> None:
        """What the plane's pipeline does with a batch: apply it, note what it changed."""
        changed = set()
        for (service, endpoint), verdict in verdicts:
            if overlay.set_verdict(service, endpoint, verdict):
                changed.add(service)
        changes.append(changed)

    async with HttpBackend() as bad, HttpBackend() as good:
        check = HealthCheck(
            kind="http", interval=0.02, timeout=1.0, unhealthy_threshold=2,
            healthy_threshold=3, control_plane=True,
        )  # fmt: skip
        endpoints = (Endpoint("127.0.0.1", bad.port), Endpoint("127.0.0.1", good.port))
        merged = {"web": Service("web", endpoints, BalancingPolicy(health_check=check))}
        overlay.update(merged, None)
        stage.follow(merged, None)
        task = asyncio.create_task(stage.run(apply))
        try:
            bad_key = f"127.0.0.1:{bad.port}"

            def health_of_bad() -> str:
                return next(str(e.health) for e in overlay.services["web"].endpoints
                            if e.key == bad_key)  # fmt: skip

            await wait_for(lambda: good.requests >= 1 and bad.requests >= 1)
            assert health_of_bad() == "healthy"
            bad.status = 500
            failing_from = bad.requests
            await wait_for(lambda: health_of_bad() == "unhealthy")
            assert bad.requests - failing_from >= 2
            assert {"web"} in changes
            labels = {"service": "web", "endpoint": bad_key}
            assert metrics_registry.get_sample_value("xdscp_health_endpoint_healthy", labels) == 0
            bad.status = 200
            passing_from = bad.requests
            await wait_for(lambda: health_of_bad() == "healthy")
            assert bad.requests - passing_from >= 3
            transitions = {"service": "web", "to": "unhealthy"}
            assert (
                metrics_registry.get_sample_value("xdscp_health_transitions_total", transitions)
                == 1
            )
            status = stage.status()
            assert status["mode"] == "local"
            assert status["checks"]["web"][bad_key]["verdict"] == "healthy"
        finally:
            task.cancel()
            await asyncio.wait([task])


@pytest.mark.parametrize(
    ("answer", "healthy"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", True),
        (b"HTTP/1.0 204 No Content\r\n\r\n", True),
        (b"HTTP/1.1 301 Moved\r\nlocation: /healthz\r\ncontent-length: 0\r\n\r\n", False),
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n", False),
        (b"", False),
        (b"HTTP/1.1 2\xb200 OK\r\n\r\n", False),
        (b"\x00\xff garbage \x01" * 50, False),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nx: " + b"a" * 70_000 + b"\r\n\r\n", False),
    ],
)
async def test_any_http_answer_is_a_verdict(answer: bytes, healthy: bool) -> None:
    """2xx is healthy, a redirect is not followed, and whatever else a backend answers
    (nothing, junk, HTTP/2, a header too long) is a failed check, never an exception."""
    prober = Prober()
    try:
        async with HttpBackend(answer) as backend:
            result = await prober.check(target("http", backend.port))
    finally:
        await prober.close()
    assert result.ok is healthy
    assert healthy or result.detail
