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
