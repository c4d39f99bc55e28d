"""The DNS resolver plugged into the etcd registry source resolves registered hostnames."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.dns import DnsTestServer
from tests.fixtures.etcd import EtcdServer
from xdscp.dns import DnsResolver, ResolverConfig
from xdscp.etcd import EtcdClient
from xdscp.model import ServiceSet
from xdscp.sources.etcd import EtcdRegistrySource, Resolver
from xdscp.testing import wait_for

pytestmark = pytest.mark.etcd


async def test_registered_hostnames_resolve_through_the_dns_resolver(
    etcd_server: EtcdServer, dns_server: DnsTestServer
) -> None:
    """A registration naming `web.test` gets the address our DNS server gives, and follows it."""
    dns_server.add("web.test.", "A", "10.0.0.7", ttl=1)
    config = ResolverConfig(nameservers=("127.0.0.1",), port=dns_server.port, timeout=0.5)
    resolver: Resolver = DnsResolver(config)
    sets: list[dict[str, list[str]]] = []

    def record(services: ServiceSet) -> None:
        sets.append({n: [e.key for e in s.endpoints] for n, s in services.items()})

    async with EtcdClient(etcd_server.config()) as client:
        await client.put(b"/xdscp/services/web/1", b'{"address": "web.test", "port": 8080}')
        source = EtcdRegistrySource(client, resolver=resolver, resolve_interval=0.2)
        task = asyncio.create_task(source.run(record))
        try:
            await wait_for(lambda: bool(sets) and sets[-1] == {"web": ["10.0.0.7:8080"]})
            dns_server.remove("web.test.")
            dns_server.add("web.test.", "A", "10.0.0.8", ttl=1)
            await wait_for(lambda: sets[-1] == {"web": ["10.0.0.8:8080"]})
        finally:
            task.cancel()
            await asyncio.wait([task])
    assert dns_server.queries("web.test.", "A")
