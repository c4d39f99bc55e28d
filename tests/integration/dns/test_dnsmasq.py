"""The same discovery scenarios against Debian's dnsmasq (skipped when it is not installed)."""

from __future__ import annotations

import dataclasses

from tests.fixtures.dnsmasq import DnsmasqServer
from xdscp.dns import DnsService, RecordType, RefreshPolicy, ResolverConfig, Status
from xdscp.sources.dns import DnsSource
from xdscp.testing import Recorder, running, wait_for

REFRESH = RefreshPolicy(
    min_interval=0.1, max_interval=0.3, backoff_initial=0.05, backoff_max=0.2, missing_grace=60
)
API = DnsService("api", "api.test", RecordType.BOTH, port=8080)


def source_for(server: DnsmasqServer, *decls: DnsService, **refresh: float) -> DnsSource:
    """A DnsSource asking dnsmasq with short intervals."""
    config = ResolverConfig(nameservers=("127.0.0.1",), port=server.port, timeout=0.5)
    policy = dataclasses.replace(REFRESH, **refresh)
    return DnsSource(decls, config, refresh=policy, min_interval=0.02, startup_grace=5)


async def test_hosts_added_and_removed(dnsmasq_server: DnsmasqServer) -> None:
    """A and AAAA answers from dnsmasq's hosts file follow its changes."""
    dnsmasq_server.set_hosts("10.0.0.2 api.test", "10.0.0.1 api.test")
    source, recorder = source_for(dnsmasq_server, API), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        assert recorder.last == {"api": ["10.0.0.1:8080", "10.0.0.2:8080"]}
        dnsmasq_server.set_hosts("10.0.0.1 api.test", "2001:db8::1 api.test")
        await wait_for(lambda: len(recorder.sets) == 2)
    assert recorder.last == {"api": ["10.0.0.1:8080", "[2001:db8::1]:8080"]}


async def test_ttl_from_dnsmasq(dnsmasq_server: DnsmasqServer) -> None:
    """dnsmasq's answer TTL (local-ttl) sets the refresh interval within the bounds."""
    dnsmasq_server.set_hosts("10.0.0.1 api.test")
    dnsmasq_server.set_ttl(2)
    source = source_for(dnsmasq_server, API, min_interval=0.5, max_interval=10)
    async with running(source, Recorder()):
        await wait_for(lambda: source.next_refresh("api") == 2.0)


async def test_srv_from_dnsmasq(dnsmasq_server: DnsmasqServer) -> None:
    """SRV ports, weights and priorities served by dnsmasq map to endpoints."""
    dnsmasq_server.set_hosts("10.0.0.1 a.test", "10.0.0.2 b.test")
    dnsmasq_server.set_srv(
        "_grpc._tcp.svc.test,a.test,9001,10,60", "_grpc._tcp.svc.test,b.test,9002,20,0"
    )
    decl = DnsService("grpc", "_grpc._tcp.svc.test", RecordType.SRV, srv_target_type=RecordType.A)
    source, recorder = source_for(dnsmasq_server, decl), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
    got = [(e.key, e.weight, e.priority) for e in recorder.sets[-1]["grpc"].endpoints]
    assert got == [("10.0.0.1:9001", 60, 0), ("10.0.0.2:9002", 1, 1)]


async def test_server_down_keeps_last_good_and_nxdomain_policy(
    dnsmasq_server: DnsmasqServer,
) -> None:
    """dnsmasq stopped: last good kept; back with the name gone: NXDOMAIN, still kept."""
    dnsmasq_server.set_hosts("10.0.0.1 api.test")
    source, recorder = source_for(dnsmasq_server, API), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        dnsmasq_server.stop()
        await wait_for(lambda: source.status("api") is Status.FAILING)
        dnsmasq_server.set_hosts()
        dnsmasq_server.start()
        await wait_for(lambda: source.status("api") is Status.MISSING)
        nxdomain = source.metrics.failures.labels("api", "nxdomain")
        await wait_for(lambda: nxdomain._value.get() >= 2)
    assert len(recorder.sets) == 1
    assert recorder.last == {"api": ["10.0.0.1:8080"]}
