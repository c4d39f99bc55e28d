"""Two `xdscp serve` replicas on one real etcd share one health checker: exactly one checks
(counted at the backend), both apply its verdicts, and when it is killed the other takes over
within the lease TTL, keeping the verdicts."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.etcd import EtcdClient, EtcdConfig
from xdscp.model import BalancingPolicy, HealthCheck
from xdscp.registry import policy_value
from xdscp.testing import free_port, wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.slow]
INTERVAL_S = 0.2
TTL_S = 2


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    admin: str

    async def health(self) -> dict[str, Any]:
        def get() -> dict[str, Any]:
            with urllib.request.urlopen(f"{self.admin}/debug/health", timeout=5) as response:
                return dict(json.loads(response.read()))

        return await asyncio.to_thread(get)


async def start_replica(etcd: str) -> Replica:
    admin = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--etcd", etcd,
        "--xds", "127.0.0.1:0", "--admin", f"127.0.0.1:{admin}",
        "--health-lease-ttl", str(TTL_S),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return Replica(process, f"http://127.0.0.1:{admin}")


async def until(replica: Replica, predicate: Any, limit: float = 30.0) -> dict[str, Any]:
    """Poll the replica's /debug/health until `predicate(status)` holds; the status."""

    async def holds() -> dict[str, Any] | None:
        status = await replica.health()
        return status if status and predicate(status) else None

    return await wait_for(holds, limit, retry_on=(OSError,), what="the replica's health")


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [Backend(BackendConfig(f"b{i}", http_port=-1)) for i in range(2)]
    for backend in started:
        await backend.start()
    try:
        yield started
    finally:
        for backend in started:
            await backend.stop()


async def test_one_checker_among_replicas_and_takeover(
    etcd_server: EtcdServer, backends: list[Backend]
) -> None:
    """Service `web` (2 gRPC backends, grpc health checked by the control plane every 0.2 s)
    in etcd, two replicas. Exactly one checks (the other's /debug/health has no checks) and
    each backend gets at most one check per interval; b0 answering NOT_SERVING is UNHEALTHY
    on both replicas. SIGKILL the checker: the other takes over within the lease TTL (2 s)
    plus a check, keeps b0 UNHEALTHY, and checks at the same rate."""
    check = HealthCheck(kind="grpc", interval=INTERVAL_S, unhealthy_threshold=2,
                        control_plane=True)  # fmt: skip
    async with EtcdClient(EtcdConfig(endpoints=(etcd_server.url,))) as client:
        await client.put(
            b"/xdscp/policies/web",
            policy_value(BalancingPolicy(health_check=check, upstream_protocol="http2")),
        )
        for i, backend in enumerate(backends):
            value = json.dumps({"address": "127.0.0.1", "port": backend.grpc_port}).encode()
            await client.put(f"/xdscp/services/web/e{i}".encode(), value)
        replicas = [await start_replica(etcd_server.url) for _ in range(2)]
        try:
            await run_scenario(client, replicas, backends)
        finally:
            for replica in replicas:
                if replica.process.returncode is None:
                    replica.process.send_signal(signal.SIGTERM)
                await replica.process.wait()


def both_healthy(status: dict[str, Any]) -> bool:
    return len(status["verdicts"].get("web", {})) == 2


async def run_scenario(
    client: EtcdClient, replicas: list[Replica], backends: list[Backend]
) -> None:
    statuses = [await until(r, both_healthy) for r in replicas]
    checking = [s["checking"] for s in statuses]
    assert sorted(checking) == [False, True], statuses
    leader, follower = (replicas[0], replicas[1]) if checking[0] else (replicas[1], replicas[0])
    assert (await follower.health())["checks"] == {}
    assert (await follower.health())["leader"] == (await leader.health())["leader"]

    b1 = f"127.0.0.1:{backends[1].grpc_port}"
    probes_from, started = backends[1].health_checks, time.monotonic()
    seen = (await leader.health())["checks"]["web"][b1]["checks"]
    await until(leader, lambda s: s["checks"]["web"][b1]["checks"] >= seen + 5)
    window_probes = await rate(backends[1], probes_from, started)

    await backends[0].set_serving(False)
    b0 = f"127.0.0.1:{backends[0].grpc_port}"
    for replica in (leader, follower):
        await until(replica, lambda s: s["verdicts"]["web"][b0] == "unhealthy")

    leader.process.kill()
    killed = time.monotonic()
    await leader.process.wait()
    status = await until(follower, lambda s: s["checking"] and s["checks"].get("web"))
    took_over = time.monotonic() - killed
    assert status["verdicts"]["web"][b0] == "unhealthy"  # kept across the change of checker
    assert status["checks"]["web"][b0]["verdict"] == "unhealthy"  # seeded, not re-learned
    probes_from, started = backends[1].health_checks, time.monotonic()
    await until(follower, lambda s: s["checks"]["web"][b1]["checks"] >= 5)
    after = await rate(backends[1], probes_from, started)
    print(
        f"\nhealth replicas: one checker of 2; b1 checked {window_probes[0]} times in"
        f" {window_probes[1]:.2f}s before the kill, {after[0]} in {after[1]:.2f}s after"
        f" (interval {INTERVAL_S}s); the other replica took over {took_over:.2f}s after"
        f" SIGKILL (lease TTL {TTL_S}s)"
    )
    assert took_over < TTL_S + 5  # the lease's TTL, and the campaign that follows
    kept = await client.get(b"/xdscp/_health/results/web/" + b0.encode())
    assert kept is not None
    assert json.loads(kept.value)["verdict"] == "unhealthy"


async def rate(backend: Backend, probes_from: int, started: float) -> tuple[int, float]:
    """Checks at `backend` since `started` (when it had `probes_from`), and the window; at
    most one check per interval (plus the one at the window's start) means one checker."""
    probes, window = backend.health_checks - probes_from, time.monotonic() - started
    assert probes <= window / INTERVAL_S + 1, (probes, window)
    return probes, window
