"""Every policy served over xDS to a real Envoy: 1000 requests each match the reference
balancer's prediction for the same resources; and xdscp restarting changes nothing for Envoy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest

from tests.harness.parity import Client
from tests.harness.plane import (
    XDS_APIS,
    EnvoyStarter,
    Plane,
    admin_json,
    envoys_in_sync,
    plane_admin,
    served_until,
    web,
)
from tests.harness.stats import (
    SPLIT_CASES,
    assert_shares,
    reference,
    shares,
)
from xdscp.balancer import sequential_picks
from xdscp.demo.backend import Backend
from xdscp.model import HashOn, LbPolicy
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import wait_for
from xdscp.translate import cluster_for, load_assignment_for

pytestmark = pytest.mark.envoy
N = 1000


def _names(backends: list[Backend]) -> dict[int, str]:
    return {b.http_port: b.config.name for b in backends}


def _name_of(backends: list[Backend]) -> object:
    ports = _names(backends)
    return lambda host: ports[int(str(host).rpartition(":")[2])]


async def _requests(
    plane: Plane, count: int, headers: dict[str, str] | None = None
) -> Counter[str]:
    def run() -> Counter[str]:
        client = Client(plane.listener_port)
        try:
            return Counter(
                client.get("/", {"Host": "web", **(headers or {})}) for _ in range(count)
            )
        finally:
            client.close()

    return await asyncio.to_thread(run)


def _connected(proxy: EnvoyProcess) -> int:
    """Envoy's `control_plane.connected_state` gauge: 1 while its ADS stream is up."""
    stat = proxy.admin("/stats?filter=^control_plane.connected_state$")
    return int(stat.rpartition(":")[2])


@pytest.mark.parametrize(("lb", "wrong"), SPLIT_CASES)
async def test_policy_split_over_xds_matches_the_reference(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter, lb: str, wrong: dict[str, float]
) -> None:
    """1:2:7 backends, 1000 sequential requests through Envoy configured over xDS: each
    backend's count is within 5 sigma of the reference prediction (exact for round robin up
    to one pick), and far enough from the plausible wrong split to tell them apart."""
    service = web(backends, (1, 2, 7), lb=LbPolicy(lb))
    plane.source.set({"web": service})
    await envoy()
    for name in ("b0", "b1", "b2"):
        await served_until(plane, name)
    observed = await _requests(plane, N)
    ref = reference(cluster_for(service), load_assignment_for(service))
    predicted = shares(sequential_picks(ref, 20_000, _name_of(backends)))  # type: ignore[arg-type]
    assert_shares(observed, predicted, N, reference_picks=20_000, alternative=wrong)
    if lb in {"round_robin", "weighted_round_robin"}:
        assert all(abs(observed[k] - N * p) <= 1.5 for k, p in predicted.items()), observed


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
async def test_header_hash_over_xds_sticks_and_matches(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter, lb: str
) -> None:
    """Header hashing configured in CDS: 100 users each land where the reference predicts,
    on every one of 10 requests (1000 requests)."""
    service = web(backends, (1, 2, 7), lb=LbPolicy(lb), hash_on=(HashOn.parse("header:x-user"),))
    plane.source.set({"web": service})
    await envoy()
    await served_until(plane, "b2")
    ref = reference(cluster_for(service), load_assignment_for(service))
    name_of = _name_of(backends)
    for i in range(100):
        user = f"user-{i}"
        seen = await _requests(plane, 10, {"x-user": user})
        want = name_of(ref.choose(ref.request_hash(headers={"x-user": user})))  # type: ignore[operator]
        assert seen == {want: 10}, (user, seen)


async def test_source_ip_hash_over_xds_sticks_per_client_address(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """Clients on 20 loopback addresses each stick to the backend predicted for their IP."""
    service = web(backends, (1, 2, 7), lb=LbPolicy.SOURCE_IP_HASH)
    plane.source.set({"web": service})
    await envoy()
    await served_until(plane, None)  # 127.0.0.1 hashes to one backend, whichever it is
    ref = reference(cluster_for(service), load_assignment_for(service))
    name_of = _name_of(backends)

    def from_ip(ip: str) -> Counter[str]:
        client = Client(plane.listener_port, source_ip=ip)
        try:
            return Counter(client.get("/", {"Host": "web"}) for _ in range(5))
        finally:
            client.close()

    for i in range(2, 22):
        ip = f"127.0.{i}.{i + 1}"
        want = name_of(ref.choose(ref.request_hash(source_ip=ip)))  # type: ignore[operator]
        assert await asyncio.to_thread(from_ip, ip) == {want: 5}


@pytest.mark.parametrize("envoy", XDS_APIS, indirect=True)  # delta: test_delta_envoy.py
async def test_restart_keeps_envoy_serving_with_identical_versions(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """xdscp stops and a new process-equivalent starts on the same port while Envoy serves:
    no request fails, Envoy reconnects, and it receives the very same versions (no churn)."""
    plane.source.set({"web": web(backends, (1, 1))})
    proxy = await envoy()
    await served_until(plane, "b1")
    before = await admin_json(proxy, "/config_dump?resource=dynamic_active_clusters")
    failures, served, stop = [0], [0], threading.Event()

    def load() -> None:
        client = Client(plane.listener_port)
        while not stop.is_set():
            try:
                served[0] += client.get("/", {"Host": "web"}).startswith("b")
            except OSError:
                failures[0] += 1
                client = Client(plane.listener_port)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        await plane.plane.stop()
        await wait_for(lambda: _connected(proxy) == 0, 30)  # Envoy has lost its control plane
        options = ServeOptions(
            xds_port=plane.plane.xds_port, admin_port=0, translate=plane.plane.options.translate
        )
        plane.plane = build_plane(ServerConfig(serve=options), sources=[plane.source])
        await plane.plane.start()
        started = time.monotonic()
        while not await plane_admin(plane, "/debug/nodes"):
            assert time.monotonic() - started < 30, "Envoy did not reconnect"
            await asyncio.sleep(0.05)
        await envoys_in_sync(plane)
    finally:
        stop.set()
        await asyncio.to_thread(worker.join)
    after = await admin_json(proxy, "/config_dump?resource=dynamic_active_clusters")
    assert failures[0] == 0
    assert served[0] > 100
    assert after["configs"][0]["version_info"] == before["configs"][0]["version_info"]
    assert after["configs"][0]["last_updated"] == before["configs"][0]["last_updated"]
