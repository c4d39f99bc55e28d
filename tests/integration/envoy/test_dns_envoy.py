"""DNS discovery end to end: SRV records in a real DNS server → xdscp → a real Envoy's traffic."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.fixtures.dns import DnsTestServer
from tests.harness.dns import make_source
from tests.harness.plane import EnvoyStarter, Plane, aget, running_plane, served_until
from xdscp.demo.backend import Backend
from xdscp.dns import DnsService, RecordType

pytestmark = pytest.mark.envoy
SRV_NAME = "_http._tcp.web.test."


@pytest.fixture
async def plane(dns_server: DnsTestServer) -> AsyncIterator[Plane]:
    """A control plane whose only source is DNS: service `web` from SRV records."""
    dns_server.add("backends.test.", "A", "127.0.0.1", ttl=1)
    declaration = DnsService(service="web", dns_name=SRV_NAME, record_type=RecordType.SRV)
    async with running_plane(make_source(dns_server, declaration)) as running:
        yield running


async def test_srv_change_reaches_envoy_traffic(
    plane: Plane, dns_server: DnsTestServer, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """SRV weights 1:3 become Envoy's split; a new SRV record is served within seconds; a
    DNS failure (SERVFAIL) keeps the last good endpoints serving."""
    for backend, weight in zip(backends[:2], (1, 3), strict=True):
        dns_server.add(SRV_NAME, "SRV", f"10 {weight} {backend.http_port} backends.test.", ttl=1)
    await envoy()
    await served_until(plane, "b0")
    await served_until(plane, "b1")
    counts = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(40)])
    assert abs(counts["b0"] - 10) <= 1, counts  # SRV weights → weighted round robin
    dns_server.add(SRV_NAME, "SRV", f"10 1 {backends[2].http_port} backends.test.", ttl=1)
    seconds = await served_until(plane, "b2", within=10.0)
    print(
        f"SRV record added -> served through Envoy in {seconds:.2f} s (TTL 1 s, min refresh 0.1 s)"
    )
    before = plane.plane.cache.get("envoy")
    asked = len(dns_server.queries(SRV_NAME))
    dns_server.set_mode("servfail")
    for _ in range(500):  # until xdscp has been answered SERVFAIL at least twice
        if len(dns_server.queries(SRV_NAME)) >= asked + 2:
            break
        await asyncio.sleep(0.01)
    assert len(dns_server.queries(SRV_NAME)) >= asked + 2
    served = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(30)])
    assert set(served) == {"b0", "b1", "b2"}
    assert plane.plane.cache.get("envoy") is before  # nothing was pushed: last good kept
