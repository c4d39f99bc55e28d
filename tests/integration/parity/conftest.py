"""Fixtures for the parity tests: demo backends and real Envoys serving static parity cases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.harness.parity import Backends, Case, Deployment, EnvoyFactory, bootstrap, listener_ports
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.procs.envoy import EnvoyProcess

BACKEND_COUNT = 6
# Longer than any test runs: a request pinned on the slow host stays pinned until its Envoy
# stops (the backend's handler threads are daemons, so stopping the backend never waits).
SLOW_DELAY_S = 3600.0


def _start(configs: Sequence[BackendConfig]) -> tuple[list[Backend], Backends]:
    running = []
    for config in configs:
        backend = Backend(config)
        asyncio.run(backend.start())  # HTTP only: the server runs in its own thread
        running.append(backend)
    ports = tuple(b.http_port for b in running)
    return running, Backends(ports, {b.http_port: b.config.name for b in running})


def _stop(running: Sequence[Backend]) -> None:
    async def stop_all() -> None:
        await asyncio.gather(*(b.stop() for b in running))

    asyncio.run(stop_all())


@pytest.fixture(scope="package")
def backends() -> Iterator[Backends]:
    """Six fast HTTP backends b0..b5."""
    configs = [BackendConfig(f"b{i}", grpc_port=-1) for i in range(BACKEND_COUNT)]
    running, info = _start(configs)
    try:
        yield info
    finally:
        _stop(running)


@pytest.fixture(scope="package")
def slow_backend() -> Iterator[Backends]:
    """One HTTP backend, `slow`, answering after SLOW_DELAY_S seconds."""
    running, info = _start([BackendConfig("slow", grpc_port=-1, delay_s=SLOW_DELAY_S)])
    try:
        yield info
    finally:
        _stop(running)


@pytest.fixture
def envoy_for(tmp_path: Path) -> Iterator[EnvoyFactory]:
    """Start a real Envoy (one worker) serving the given cases; returns the Deployment.

    Every Envoy started is stopped at teardown."""
    started: list[EnvoyProcess] = []

    def start(cases: Sequence[Case]) -> Deployment:
        envoy = EnvoyProcess(bootstrap(cases), tmp_path / f"envoy{len(started)}", concurrency=1)
        started.append(envoy)
        envoy.start()
        return Deployment(envoy, listener_ports(envoy))

    try:
        yield start
    finally:
        for envoy in started:
            envoy.stop()
