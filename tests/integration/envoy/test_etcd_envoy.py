"""The main user path: services registered in etcd, served to a real Envoy by xdscp."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.plane import EnvoyStarter, Plane, aget, plane_admin, running_plane, served_until
from xdscp.demo.backend import Backend
from xdscp.etcd import EtcdClient
from xdscp.model import BalancingPolicy, HashOn, LbPolicy
from xdscp.registry.registration import build_registration, register, set_policy
from xdscp.sources.etcd import EtcdRegistrySource

pytestmark = [pytest.mark.envoy, pytest.mark.etcd]


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    """An etcd client for the test's own writes."""
    async with EtcdClient(etcd_server.config()) as etcd:
        yield etcd


@pytest.fixture
async def plane(etcd_server: EtcdServer) -> AsyncIterator[Plane]:
    """A control plane watching the etcd registry (its own client, as `xdscp serve` has)."""
    async with EtcdClient(etcd_server.config()) as etcd:
        source = EtcdRegistrySource(etcd, min_interval=0.0)
        async with running_plane(source) as running:
            yield running


async def test_registrations_and_policies_in_etcd_drive_envoy(
    plane: Plane, client: EtcdClient, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """Registered backends serve traffic by their weights; a policy written to etcd changes
    Envoy's balancing (ring hash: one user sticks to one backend); a deregistered backend
    gets no more requests."""
    async with contextlib.AsyncExitStack() as stack:
        leases = []
        for backend, weight in zip(backends[:3], (1, 2, 7), strict=True):
            registration = build_registration("web", "127.0.0.1", backend.http_port, weight=weight)
            leases.append(await stack.enter_async_context(register(client, registration, ttl=5)))
        await set_policy(client, "web", BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN))
        await envoy()
        for name in ("b0", "b1", "b2"):
            await served_until(plane, name)
        split = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(100)])
        assert all(abs(split[n] - c) <= 1 for n, c in (("b0", 10), ("b1", 20), ("b2", 70))), split
        ring = BalancingPolicy(lb=LbPolicy.RING_HASH, hash_on=(HashOn.parse("header:x-user"),))
        await set_policy(client, "web", ring)
        await plane_policy_applied(plane)
        sticky = {await aget_user(plane, "alice") for _ in range(10)}
        assert len(sticky) == 1
        # b2 deregisters as `xdscp deregister` does: its key deleted while its registrar runs
        # (a revoked lease is a lost lease to a registrar, which registers again)
        await client.delete(leases[2].key.encode())
        await leases[2].wait_ended()  # the registrar saw it and stopped, writing nothing back
        await served_until_gone(plane, "b2")
        after = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(30)])
        assert "b2" not in after


async def plane_policy_applied(plane: Plane) -> None:
    """Wait until every connected node has accepted the current cluster version."""
    for _ in range(300):
        nodes = await plane_admin(plane, "/status/nodes")
        snapshot = plane.plane.cache.get("envoy")
        if snapshot is not None and nodes and all(n["types"]["Cluster"]["in_sync"] for n in nodes):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the policy change was not accepted in time")


async def aget_user(plane: Plane, user: str) -> str:
    """The backend answering a request from `user` (header x-user)."""

    def call() -> str:
        conn = http.client.HTTPConnection("127.0.0.1", plane.listener_port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": "web", "x-user": user})
            response = conn.getresponse()
            response.read()
            return response.getheader("x-backend") or ""
        finally:
            conn.close()

    return await asyncio.to_thread(call)


async def served_until_gone(plane: Plane, name: str) -> None:
    """Wait until 20 requests in a row avoid `name`."""
    deadline = time.monotonic() + 10
    streak = 0
    while streak < 20:
        assert time.monotonic() < deadline, f"{name} still served"
        _, who = await aget(plane.listener_port, "web")
        streak = 0 if who == name else streak + 1
