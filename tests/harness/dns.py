"""DNS sources for tests: a resolver answering from a dict (no network), and fast refresh
settings and a source on the DNS test server (tests/fixtures/dns.py) (the publish recorder,
bounded waits and the source runner are `xdscp.testing`'s)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from xdscp.dns import DnsResolver, DnsService, Lookup, RefreshPolicy, ResolverConfig
from xdscp.dns.errors import DnsLookupError
from xdscp.model import Endpoint
from xdscp.sources.dns import DnsSource

if TYPE_CHECKING:
    from tests.fixtures.dns import DnsTestServer  # only a type here: this module starts nothing

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


# Refresh settings for a `ScriptedResolver`: it answers at once, so every interval is tiny.
SCRIPTED_REFRESH = RefreshPolicy(
    min_interval=0.01, max_interval=0.01, backoff_initial=0.01, backoff_max=0.02
)


class ScriptedResolver(DnsResolver):
    """Answers each service from a dict the test edits (an address list or an error)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, list[str] | DnsLookupError] = {}
        self.calls = 0

    async def lookup(self, declaration: DnsService) -> Lookup:
        """The scripted answer for the declared service."""
        self.calls += 1
        await asyncio.sleep(0)
        answer = self.answers[declaration.service]
        if isinstance(answer, DnsLookupError):
            raise answer
        return Lookup(tuple(Endpoint(a, 80) for a in answer), 0.01)
