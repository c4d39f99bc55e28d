"""DnsSource with a scripted resolver (no network): coalescing, no-op answers, start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from structlog.testing import capture_logs

from tests.harness.dns import SCRIPTED_REFRESH, ScriptedResolver
from xdscp.dns import DnsService, RefreshPolicy
from xdscp.dns.errors import DnsServfailError
from xdscp.model import ServiceSet
from xdscp.sources.dns import DnsSource
from xdscp.testing import wait_for


@asynccontextmanager
async def running(source: DnsSource, sets: list[ServiceSet]) -> AsyncIterator[None]:
    """Run the source in a task, cancelled on exit."""
    task = asyncio.create_task(source.run(sets.append))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def addresses(services: ServiceSet, name: str) -> list[str]:
    """The endpoint keys of one service in a published set."""
    return [e.key for e in services[name].endpoints]


async def test_unchanged_answers_publish_once() -> None:
    """Many identical answers give exactly one publish; a change gives one more."""
    resolver = ScriptedResolver()
    resolver.answers = {"api": ["10.0.0.2", "10.0.0.1"]}
    source = DnsSource(
        [DnsService("api", "api.test", port=80)], refresh=SCRIPTED_REFRESH, resolver=resolver
    )
    sets: list[ServiceSet] = []
    async with running(source, sets):
        await wait_for(lambda: resolver.calls >= 10)
        assert len(sets) == 1
        assert addresses(sets[0], "api") == ["10.0.0.1:80", "10.0.0.2:80"]
        resolver.answers["api"] = ["10.0.0.1"]
        await wait_for(lambda: len(sets) == 2)
        calls = resolver.calls
        await wait_for(lambda: resolver.calls >= calls + 5)
    assert addresses(sets[-1], "api") == ["10.0.0.1:80"]
    assert len(sets) == 2
    assert source.ready


async def test_startup_waits_for_every_declaration_then_gives_up_after_grace() -> None:
    """A service failing from the start holds the first publish for startup_grace only."""
    resolver = ScriptedResolver()
    resolver.answers = {"ok": ["10.0.0.1"], "bad": DnsServfailError("bad.test.")}
    decls = [DnsService("ok", "ok.test", port=80), DnsService("bad", "bad.test", port=80)]
    source = DnsSource(decls, refresh=SCRIPTED_REFRESH, resolver=resolver, startup_grace=0.3)
    sets: list[ServiceSet] = []
    with capture_logs() as logs:
        async with running(source, sets):
            await wait_for(lambda: resolver.calls >= 6)
            assert not source.ready
            await wait_for(lambda: source.ready)
            resolver.answers["bad"] = ["10.0.0.9"]
            await wait_for(lambda: len(sets) == 2)
    assert list(sets[0]) == ["ok"]
    assert list(sets[1]) == ["bad", "ok"]
    incomplete = [e for e in logs if e["event"] == "dns_startup_incomplete"]
    assert [e["pending"] for e in incomplete] == [["bad"]]
    failing = [e for e in logs if e["event"] == "dns_service_unresolved"]
    assert len(failing) == 1
    assert source.metrics.failures.labels("bad", "servfail")._value.get() >= 3


async def test_changes_in_several_services_are_coalesced() -> None:
    """Changes to many services within min_interval reach the pipeline as one publish."""
    resolver = ScriptedResolver()
    names = [f"s{i}" for i in range(20)]
    resolver.answers = {n: ["10.0.0.1"] for n in names}
    slow = RefreshPolicy(min_interval=0.05, max_interval=0.05)
    decls = [DnsService(n, f"{n}.test", port=80) for n in names]
    source = DnsSource(decls, refresh=slow, resolver=resolver, min_interval=0.2)
    sets: list[ServiceSet] = []
    async with running(source, sets):
        await wait_for(lambda: source.ready)
        for n in names:
            resolver.answers[n] = ["10.0.0.2"]
        await wait_for(lambda: all(addresses(sets[-1], n) == ["10.0.0.2:80"] for n in names))
    assert len(sets) <= 3


def test_duplicate_declarations_are_rejected() -> None:
    """Two declarations of one service name are a configuration error."""
    from xdscp.errors import ConfigError

    decl = DnsService("api", "api.test", port=80)
    with pytest.raises(ConfigError):
        DnsSource([decl, decl])
