"""Two `xdscp serve --etcd` replicas serve the same computed weights, so the same versions.

Three endpoints registered with equal weights and a noisy load of their own (100 rps at
utilization 1, 1/2, 1/4, each wobbling by up to 5 % at every refresh): computed alone, each
replica would hold whatever it last pushed inside the hysteresis band (the unit tests measure
it), so the replicas would serve different weights and versions. Sharing one publisher
(elected through etcd), both serve its record: the Envoy snapshot's ClusterLoadAssignment
version is the same on both, and it stays so while the loads keep changing. When the
publisher stops, the other replica is elected and publishes in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.serve import LogEvents, Serve, get_json
from xdscp.etcd import EtcdClient
from xdscp.model import AdaptiveSettings, BalancingPolicy, LbPolicy, ReportedLoad
from xdscp.registry import Placement, Registered, build_registration, register, report_load
from xdscp.registry.registration import set_policy
from xdscp.testing import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PORTS = (7101, 7102, 7103)
UTILIZATION = {7101: 1.0, 7102: 0.5, 7103: 0.25}
ADAPTIVE = AdaptiveSettings(min_push_interval=0.5)


@contextlib.contextmanager
def _replicas(etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Serve]]:
    monkeypatch.setenv("XDSCP_XDS__WEIGH_INTERVAL", "0.2")
    started: list[Serve] = []
    try:
        for _ in range(2):
            serve = Serve(etcd.url)
            assert serve.process.stderr is not None
            LogEvents(serve.process.stderr)  # drained as it comes
            started.append(serve)
        yield started
    finally:
        for serve in started:
            serve.stop()


def _served(serve: Serve) -> tuple[str, dict[str, int]] | None:
    """(the Envoy CLA version of `web`, its weights by endpoint), None while not served."""
    _, resources = get_json(serve.base + "/debug/resources")
    _, services = get_json(serve.base + "/api/services")
    services = services["services"]
    version = (resources.get("envoy") or {}).get("ClusterLoadAssignment", {}).get("web")
    web = [s for s in services if s.get("name") == "web"]
    if version is None or not web:
        return None
    return version, {f"{e['address']}:{e['port']}": e["weight"] for e in web[0]["endpoints"]}


def _agree(replicas: list[Serve]) -> dict[str, int] | None:
    """The weights both serve, with the same version, once they are computed ones."""
    first, second = (_served(r) for r in replicas)
    if first is None or first != second or len(set(first[1].values())) < 3:
        return None
    return first[1]


async def _refresh(client: EtcdClient, held: list[tuple[int, Registered]], rounds: int) -> None:
    """Each registrant writes its noisy load `rounds` times (every 0.1 s: its period)."""
    rng = random.Random(7)
    for _ in range(rounds):
        for port, done in held:
            utilization = UTILIZATION[port] * rng.uniform(0.95, 1.05)
            await report_load(
                client, done, Placement(), ReportedLoad(utilization, 100.0, time.time())
            )
        await asyncio.sleep(0.1)


async def test_replicas_serve_one_publishers_weights(
    etcd_server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _replicas(etcd_server, monkeypatch) as replicas:
        async with EtcdClient(etcd_server.config()) as client, contextlib.AsyncExitStack() as stack:
            held = []
            for port in PORTS:
                registration = build_registration("web", "127.0.0.1", port)
                held.append((port, await stack.enter_async_context(register(client, registration))))
            policy = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN, adaptive_weights=ADAPTIVE)
            await set_policy(client, "web", policy)
            await _refresh(client, held, 40)  # 4 s of noisy loads: several pushes
            agreed = await wait_for(lambda: _agree(replicas), 30.0)
            top = max(agreed.values())
            ratios = [agreed[f"127.0.0.1:{p}"] / top for p in PORTS]
            assert ratios == pytest.approx([0.25, 0.5, 1.0], abs=0.05), agreed
            await _refresh(client, held, 30)  # the loads keep moving: still one version
            await wait_for(lambda: _agree(replicas), 30.0)
            record = await client.get(b"/xdscp/_weights/services/web")
            assert record is not None
            assert json.loads(record.value)["weights"] == _agree(replicas)
            leader = await client.get(b"/xdscp/_weights/leader")
            assert leader is not None
            statuses = [get_json(r.base + "/debug/weights")[1] for r in replicas]
            assert sorted(s["publishing"] for s in statuses) == [False, True]
            assert {s["publisher"] for s in statuses} == {leader.value.decode()}
            assert all(s["services"]["web"]["imposed"] for s in statuses)
            # the publisher stops: the other replica takes over and serves its own record
            publisher = next(r for r in replicas if str(r.process.pid) in leader.value.decode())
            publisher.stop()
            survivor = next(r for r in replicas if r is not publisher)

            async def elected() -> bool:
                holder = await client.get(b"/xdscp/_weights/leader")
                return holder is not None and str(survivor.process.pid) in holder.value.decode()

            await _refresh(client, held, 5)
            await wait_for(elected, 30.0)
