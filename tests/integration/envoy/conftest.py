"""A control plane in this process, demo backends, and real Envoys pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.procs.envoy import EnvoyProcess
from xdscp.sources import Source
from xdscp.sources.memory import MemorySource
from xdscp.testing import free_port
from xdscp.translate import TranslateOptions


@dataclass
class Plane:
    """The running control plane, its source, and the Envoy listener port it configures."""

    plane: ControlPlane
    source: MemorySource
    listener_port: int


@contextlib.asynccontextmanager
async def running_plane(source: Source, memory: MemorySource | None = None) -> AsyncIterator[Plane]:
    """A control plane on free loopback ports fed by `source`, running for the block (`memory`
    is the MemorySource a test feeds, when `source` is one)."""
    listener_port = free_port()
    options = ServeOptions(
        xds_port=0,
        admin_port=0,
        translate=TranslateOptions(listener_address="127.0.0.1", listener_port=listener_port),
    )
    control = build_plane(ServerConfig(serve=options), sources=[source])
    await control.start()
    running = Plane(control, memory or MemorySource(), listener_port)
    try:
        yield running
    finally:
        await running.plane.stop()  # a test may have replaced it (restart)


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    """A control plane on free loopback ports, fed by a MemorySource (no services yet)."""
    source = MemorySource({})
    async with running_plane(source, source) as running:
        yield running


@contextlib.asynccontextmanager
async def running_backends(configs: list[BackendConfig]) -> AsyncIterator[list[Backend]]:
    """Demo backends started for the block and stopped after it."""
    running = [Backend(config) for config in configs]
    for backend in running:
        await backend.start()
    try:
        yield running
    finally:
        for backend in running:
            await backend.stop()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    """Four HTTP demo backends b0..b3."""
    async with running_backends([BackendConfig(f"b{i}", grpc_port=-1) for i in range(4)]) as bs:
        yield bs


EnvoyStarter = Callable[..., Awaitable[EnvoyProcess]]  # start(*, delta=False)


@pytest.fixture
async def envoy(plane: Plane, tmp_path: Path) -> AsyncIterator[EnvoyStarter]:
    """Start a real Envoy whose bootstrap only points at the control plane's ADS."""
    started: list[EnvoyProcess] = []

    async def start(*, delta: bool = False) -> EnvoyProcess:
        options = EnvoyBootstrapOptions(
            node_id=f"envoy-{len(started)}",
            servers=(XdsServer("127.0.0.1", plane.plane.xds_port),),
            admin_port=0,
            delta=delta,
        )
        process = EnvoyProcess(envoy_bootstrap(options), tmp_path / f"envoy{len(started)}")
        started.append(process)
        await asyncio.to_thread(process.start)  # the loop keeps serving xDS meanwhile
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    """One HTTP GET through Envoy; (status, backend name or body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, response.getheader("x-backend") or body
    finally:
        conn.close()


async def aget(port: int, host: str, path: str = "/") -> tuple[int, str]:
    """`get` off the event loop (the control plane in this loop must keep running)."""
    return await asyncio.to_thread(get, port, host, path)


async def admin_json(envoy: EnvoyProcess, path: str) -> Any:
    """An Envoy admin endpoint's JSON (fetched off the event loop)."""
    return json.loads(await asyncio.to_thread(envoy.admin, path))


def envoy_hosts(envoy: EnvoyProcess, cluster: str) -> set[str]:
    """The `ip:port` of every host Envoy has for `cluster` (its `/clusters` admin page)."""
    hosts = set()
    for line in envoy.admin("/clusters").splitlines():
        name, _, rest = line.partition("::")
        host, _, stat = rest.partition("::")
        if name == cluster and stat.startswith("health_flags::"):
            hosts.add(host)
    return hosts


def _plane_admin(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


async def plane_admin(plane: Plane, path: str) -> Any:
    """xdscp's own admin endpoint's JSON (it runs on this event loop: fetch from a thread)."""
    return await asyncio.to_thread(_plane_admin, plane.plane.admin.port, path)
