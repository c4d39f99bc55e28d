"""Helpers for the DNS integration tests: a publish recorder, bounded waits, a source runner."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from tests.fixtures.dns import DnsTestServer
from xdscp.dns import DnsService, RefreshPolicy, ResolverConfig
from xdscp.model import ServiceSet
from xdscp.sources.dns import DnsSource

FAST = RefreshPolicy(
    min_interval=0.1, max_interval=0.3, backoff_initial=0.05, backoff_max=0.2, missing_grace=60
)


class Recorder:
    """Records every published service set."""

    def __init__(self) -> None:
        self.sets: list[ServiceSet] = []

    def __call__(self, services: ServiceSet) -> None:
        self.sets.append(services)

    @property
    def last(self) -> dict[str, list[str]]:
        """The last published set as service -> endpoint keys."""
        if not self.sets:
            return {}
        return {n: [e.key for e in s.endpoints] for n, s in self.sets[-1].items()}


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll `predicate` until true, failing after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


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
