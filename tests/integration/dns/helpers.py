"""Helpers for the DNS integration tests: fast refresh settings and a source runner (the
publish recorder and bounded waits are `xdscp.testing`'s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.fixtures.dns import DnsTestServer
from xdscp.dns import DnsService, RefreshPolicy, ResolverConfig
from xdscp.sources.dns import DnsSource
from xdscp.testing import Recorder

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


@contextlib.asynccontextmanager
async def running(source: DnsSource, recorder: Recorder) -> AsyncIterator[None]:
    """Run a source for the duration of the block; a crash of the source fails the test."""
    task = asyncio.create_task(source.run(recorder))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # the source failed: fail the test
