"""The control plane's supervision of its sources: a failing source never stops serving."""

from __future__ import annotations

import asyncio

import pytest

from xdscp.errors import ConfigError
from xdscp.model import Endpoint, Service, ServiceSet
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.base import Publish

WEB = {"web": Service("web", (Endpoint("10.0.0.1", 80),))}


class FlakySource:
    """Publishes `first`, then fails with `error`; every later run publishes `later`."""

    def __init__(self, first: ServiceSet | None, error: BaseException, later: ServiceSet) -> None:
        self.first, self.error, self.later = first, error, later
        self.runs = 0
        self.failed = asyncio.Event()
        self.rerun = asyncio.Event()
        self.restarted = asyncio.Event()
        self.release = asyncio.Event()
        self._ready = False

    @property
    def name(self) -> str:
        return "flaky"

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def last_error(self) -> str | None:
        return None

    async def run(self, publish: Publish) -> None:
        self.runs += 1
        if self.runs == 1:
            if self.first is not None:
                publish(self.first)
                self._ready = True
            self.failed.set()
            raise self.error
        self.restarted.set()
        await self.release.wait()
        publish(self.later)
        self._ready = True
        self.rerun.set()
        await asyncio.Event().wait()


async def _running(source: FlakySource) -> ControlPlane:
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)),
        sources=[source],
    )
    await plane.start()
    return plane


def _failures(plane: ControlPlane) -> float | None:
    return plane.metrics_registry.get_sample_value(
        "xdscp_source_failures_total", {"source": "flaky"}
    )


async def test_a_crashing_source_is_restarted_and_its_services_kept_meanwhile() -> None:
    """An unexpected exception (here a RecursionError, as a deeply nested value once raised)
    is counted, the source restarted with backoff, and what it published keeps serving."""
    later = {"api": Service("api", (Endpoint("10.0.0.2", 80),))}
    source = FlakySource(WEB, RecursionError("maximum recursion depth exceeded"), later)
    plane = await _running(source)
    try:
        async with asyncio.timeout(10):
            await source.failed.wait()
            await source.restarted.wait()  # after the supervisor's backoff (0.1 s)
        assert _failures(plane) == 1
        assert set(plane.pipeline.merged) == {"web"}  # kept while the source restarts
        assert plane.view.readiness() == (True, "")
        source.release.set()
        async with asyncio.timeout(10):
            await source.rerun.wait()
        assert set(plane.pipeline.merged) == {"api"}
        assert not plane._tasks[0].done()
    finally:
        await plane.stop()


async def test_a_source_failing_before_it_is_ready_says_why_in_readiness() -> None:
    """Readiness names the waiting source and its last failure."""
    source = FlakySource(None, ValueError("boom"), WEB)
    plane = await _running(source)
    try:
        async with asyncio.timeout(10):
            await source.restarted.wait()
        assert _failures(plane) == 1
        ready, reason = plane.view.readiness()
        assert not ready
        assert reason == "waiting for sources: flaky (ValueError: boom)"
    finally:
        await plane.stop()


async def test_a_configuration_error_in_a_source_is_fatal() -> None:
    """A ConfigError cannot be fixed by a restart: `wait()` ends with it."""
    source = FlakySource(None, ConfigError("bad file"), WEB)
    plane = await _running(source)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ConfigError, match="bad file"):
                await plane.wait()
        assert source.runs == 1
    finally:
        await plane.stop()
