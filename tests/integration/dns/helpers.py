"""Helpers for the DNS integration tests: fast refresh settings and a source on the test server
(the publish recorder, bounded waits and the source runner are `xdscp.testing`'s)."""

from __future__ import annotations

from tests.fixtures.dns import DnsTestServer
from xdscp.dns import DnsService, RefreshPolicy, ResolverConfig
from xdscp.sources.dns import DnsSource

FAST = RefreshPolicy(
    min_interval=0.1, max_interval=0.3, backoff_initial=0.05, backoff_max=0.2, missing_grace=60
)


def make_source(
    server: DnsTestServer,
    *declarations: DnsService,
    refresh: RefreshPolicy = FAST,
    timeout: float = 0.5,
    tcp: bool = False,
) -> DnsSource:
    """A DnsSource asking the test server, with short intervals."""
    config = ResolverConfig(nameservers=("127.0.0.1",), port=server.port, timeout=timeout, tcp=tcp)
    return DnsSource(declarations, config, refresh=refresh, min_interval=0.02, startup_grace=5)


SRV_NAME = "_grpc._tcp.svc.test."


def add_srv_targets(server: DnsTestServer, weights: tuple[int, int, int]) -> None:
    """`SRV_NAME` with three targets (a.test, b.test: priority 10; c.test: priority 50, an
    IPv6 address) at ports 9001-9003 and the given SRV weights, and their addresses."""
    for (priority, port, target), weight in zip(_SRV_TARGETS, weights, strict=True):
        server.add(SRV_NAME, "SRV", f"{priority} {weight} {port} {target}")
    server.add("a.test.", "A", "10.0.0.1")
    server.add("b.test.", "A", "10.0.0.2")
    server.add("c.test.", "AAAA", "2001:db8::3")


_SRV_TARGETS = ((10, 9001, "a.test."), (10, 9002, "b.test."), (50, 9003, "c.test."))
