"""Fixtures of the compose suite: the stack (waited for once), and an etcd client on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.e2e.expect import Expected, applied, connected_replica, registry
from tests.e2e.stack import ENABLED, Stack, get, get_json
from xdscp.etcd import EtcdClient, EtcdConfig

STARTUP_S = 180.0  # first start on a loaded 2-core machine: etcd, 2 replicas, Envoy, backends


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running stack (only resolved when the suite runs in it: see stack.requires_stack)."""
    assert ENABLED
    return Stack.from_env()


@pytest.fixture(scope="session")
async def etcd(stack: Stack) -> AsyncIterator[EtcdClient]:
    """A client on the stack's etcd (reads only: writes go through the `xdscp` command)."""
    async with EtcdClient(EtcdConfig(endpoints=stack.etcd)) as client:
        yield client


def _ready(stack: Stack) -> str:
    """What the stack still waits for ('' once everything answers)."""
    for name, address in stack.replicas.items():
        try:
            get_json(address, "/readyz")
        except OSError as exc:
            return f"replica {name}: {exc}"
    try:
        status, _ = get(stack.envoy_admin, "/ready")
    except OSError as exc:
        return f"envoy admin: {exc}"
    if status != 200:
        return f"envoy /ready: HTTP {status}"
    return "" if connected_replica(stack) else "envoy has no ADS stream on any replica"


async def _registered(stack: Stack, etcd: EtcdClient) -> Expected:
    expected = await registry(etcd)
    names = {r.metadata.get("backend") for r in expected.registrations}
    if names != set(stack.backends):
        missing = sorted(set(stack.backends) - names)
        raise LookupError(
            f"registered backends {sorted(map(str, names))}, missing {missing} (`make"
            " e2e-compose` prints each container's exit state and last log lines)"
        )
    return expected


@pytest.fixture(scope="session")
async def started(stack: Stack, etcd: EtcdClient) -> Expected:
    """Wait until every backend registered itself, both replicas are ready and Envoy serves
    the registry's web service; record how long that took."""
    began, why = time.monotonic(), "nothing checked yet"
    while time.monotonic() - began < STARTUP_S:
        try:
            expected = await _registered(stack, etcd)
            why = await asyncio.to_thread(_ready, stack)
        except (LookupError, OSError) as exc:
            why = str(exc)
        if not why:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the stack was not ready within {STARTUP_S} s: {why}")
    await applied(stack, expected)
    stack.record("stack_ready", waited_s=round(time.monotonic() - began, 1))
    return expected
