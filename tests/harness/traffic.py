"""Traffic through a real Envoy configured by a `Plane`, and Envoy's own view of its hosts."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from typing import Any

from tests.harness.plane import EnvoyStarter, Plane, admin_json, envoys_in_sync
from xdscp.model import Service
from xdscp.procs.envoy import EnvoyProcess


def sequential(port: int, count: int, headers: dict[str, str] | None = None) -> list[Any]:
    """`count` GETs on one keep-alive connection: (status, backend or None, monotonic time)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(count):
            conn.request("GET", "/", headers={"Host": "web", **(headers or {})})
            response = conn.getresponse()
            response.read()
            out.append((response.status, response.getheader("x-backend"), time.monotonic()))
    finally:
        conn.close()
    return out


async def send(plane: Plane, count: int, headers: dict[str, str] | None = None) -> list[Any]:
    """`sequential` off the event loop, to the plane's listener."""
    return await asyncio.to_thread(sequential, plane.listener_port, count, headers)


def concurrent(port: int, count: int, headers: dict[str, str] | None = None) -> list[Any]:
    """`count` GETs started together (a barrier), one connection each: (status, headers)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            barrier.wait()
            conn.request("GET", "/", headers={"Host": "web", **(headers or {})})
            response = conn.getresponse()
            response.read()
            results[i] = (response.status, dict(response.getheaders()))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


async def envoy_stats(proxy: EnvoyProcess, prefix: str) -> dict[str, int]:
    """Envoy's counters and gauges whose names match `prefix` (its /stats?filter=)."""
    text = await asyncio.to_thread(proxy.admin, f"/stats?filter={prefix}")
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[name.strip()] = int(value)
    return out


async def host_flags(proxy: EnvoyProcess, port: int) -> str:
    """The health flags Envoy's /clusters shows for the host on `port` ("healthy" if none)."""
    data = await admin_json(proxy, "/clusters?format=json")
    for cluster in data.get("cluster_statuses", []):
        for host in cluster.get("host_statuses", []):
            if host["address"]["socket_address"]["port_value"] == port:
                status = host.get("health_status", {})
                flags = [k for k, v in status.items() if v is True]
                return ",".join(sorted(flags)) or "healthy"
    return "absent"


async def serving(plane: Plane, envoy: EnvoyStarter, service: Service) -> EnvoyProcess:
    """Serve `service` as `web`, start an Envoy, and return it once it accepted the
    configuration and a request through it was answered by a backend."""
    plane.source.set({"web": service})
    proxy = await envoy()
    await envoys_in_sync(plane)
    for _ in range(200):  # the route and cluster are live once a request is answered
        status, who, _ = (await send(plane, 1))[0]
        if who is not None:
            return proxy
    raise AssertionError(f"no backend answered (last status {status})")
