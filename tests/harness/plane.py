"""A control plane in this process, demo backends, and reads of Envoy's and xdscp's admin.

The fixtures built on these (`plane`, `backends`, `envoy`) are in tests/fixtures/plane.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.harness.model import local_endpoints, service
from xdscp.config.options import LoadReporting
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.model import Endpoint, LbPolicy, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.procs.envoy import EnvoyProcess
from xdscp.sources import Source
from xdscp.sources.memory import MemorySource
from xdscp.testing import free_port, wait_for
from xdscp.translate import TranslateOptions
from xdscp.translate.options import LRS_METRICS


@dataclass
class Plane:
    """The running control plane, its source, and the Envoy listener port it configures."""

    plane: ControlPlane
    source: MemorySource
    listener_port: int


EnvoyStarter = Callable[..., Awaitable[EnvoyProcess]]  # start(*, delta=False)
XDS_APIS = ("sotw", "delta")  # the `envoy` fixture's params: an Envoy's xDS by default


@contextlib.asynccontextmanager
async def running_plane(
    source: Source,
    memory: MemorySource | None = None,
    *,
    load: LoadReporting | None = None,
    load_metrics: tuple[str, ...] = LRS_METRICS,
) -> AsyncIterator[Plane]:
    """A control plane on free loopback ports fed by `source`, running for the block (`memory`
    is the MemorySource a test feeds, when `source` is one; `load`: its LRS settings;
    `load_metrics`: the ORCA metrics its clusters ask the clients' LRS reports to carry)."""
    listener_port = free_port()
    translate = TranslateOptions(
        listener_address="127.0.0.1", listener_port=listener_port, load_metrics=load_metrics
    )
    options = ServeOptions(
        xds_port=0, admin_port=0, translate=translate, load=load or LoadReporting()
    )
    control = build_plane(ServerConfig(serve=options), sources=[source])
    await control.start()
    running = Plane(control, memory or MemorySource(), listener_port)
    try:
        yield running
    finally:
        await running.plane.stop()  # a test may have replaced it (restart)


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


def endpoints_on(backends: Iterable[Backend], weights: Iterable[int] = ()) -> tuple[Endpoint, ...]:
    """An endpoint on 127.0.0.1 at each backend's HTTP port (weighted as `local_endpoints`)."""
    return local_endpoints((b.http_port for b in backends), weights)


def web(backends: list[Backend], weights: tuple[int, ...], **policy: object) -> Service:
    """The service `web` on the first `len(weights)` backends' HTTP ports, so weighted; the
    policy's fields as keywords (`lb` defaults to weighted round robin)."""
    lb = policy.pop("lb", LbPolicy.WEIGHTED_ROUND_ROBIN)
    return service(endpoints_on(backends, weights), lb=lb, **policy)


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


async def served_until(plane: Plane, wanted: str | None, within: float = 5.0) -> float:
    """Send requests until `wanted` (any backend when None) answers; seconds it took."""
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        status, who = await aget(plane.listener_port, "web")
        if status == 200 and (wanted is None or who == wanted):
            return time.perf_counter() - started
    raise AssertionError(f"{wanted or 'no backend'} never answered within {within} s")


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


async def envoys_in_sync(plane: Plane, within: float = 30.0) -> None:
    """Wait until some node is connected and every node has ACKed every type sent to it."""

    async def synced() -> bool:
        nodes = await plane_admin(plane, "/debug/nodes")
        return bool(nodes) and all(t["in_sync"] for n in nodes for t in n["types"].values())

    await wait_for(synced, within, interval=0.01, what="Envoy accepting the change")
