"""Health xdscp checks itself, seen by proxyless clients: a backend answering NOT_SERVING on
grpc.health.v1 leaves a grpcio and a grpc-go client's rotation, and comes back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.harness.grpc_clients import ClientStarter, GrpcClient, grpc_service, in_sync
from tests.harness.plane import Plane, plane_admin
from xdscp.demo.backend import Backend
from xdscp.model import HealthCheck, UpstreamProtocol

pytestmark = [pytest.mark.grpc, pytest.mark.go, pytest.mark.usefixtures("go_client_binary")]
INTERVAL_S = 0.2
UNHEALTHY_AFTER, HEALTHY_AFTER = 2, 3
BATCH, CONFIRM = 12, 300


def check(*, control_plane: bool) -> HealthCheck:
    return HealthCheck(
        kind="grpc", service_name="xdscp.demo.Echo", interval=INTERVAL_S, timeout=1.0,
        unhealthy_threshold=UNHEALTHY_AFTER, healthy_threshold=HEALTHY_AFTER,
        control_plane=control_plane,
    )  # fmt: skip


async def counts(clients: list[GrpcClient], n: int) -> list[Counter[str]]:
    """`n` RPCs from each client at once; per client, how many each backend answered."""
    return list(await asyncio.gather(*(c.counts(n) for c in clients)))


async def until(clients: list[GrpcClient], reached: object) -> float:
    """Send batches of RPCs until `reached(per-client counts)` holds; seconds it took."""
    started = time.monotonic()
    deadline = started + 30
    while not reached(await counts(clients, BATCH)):  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached within 30 s"
    return time.monotonic() - started


async def verdicts(plane: Plane, wanted: set[str], n: int) -> None:
    """Wait until /debug/health shows `n` verdicts for `web`, all in `wanted`."""
    deadline = time.monotonic() + 30
    while True:
        found = (await plane_admin(plane, "/debug/health"))["verdicts"].get("web", {})
        if len(found) == n and set(found.values()) <= wanted:
            return
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.01)


async def test_not_serving_backend_leaves_grpcio_and_grpc_go_rotation_and_returns(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """Round robin over b0..b2. With Envoy-only checks (control_plane false) b1 answering
    NOT_SERVING still gets a third of each client's RPCs: gRPC clients check nothing. With
    `control_plane: true`, xdscp checks every 0.2 s: after 2 failed checks b1 is UNHEALTHY
    in EDS and both clients send it 0 of 300 RPCs each (counted by the clients and by b1);
    after 3 passing checks it is back. Printed: time to leave and to return, checks per
    interval at a backend."""
    backends = grpc_backends[:3]
    http2 = UpstreamProtocol.HTTP2
    envoy_only = grpc_service(backends, (1, 1, 1), upstream_protocol=http2,
                              health_check=check(control_plane=False))  # fmt: skip
    plane.source.set({"web": envoy_only})
    clients = list(await asyncio.gather(grpc_client("python"), grpc_client("go")))
    for client in clients:
        await in_sync(plane, client.node_id)
    await backends[1].set_serving(False)
    for seen in await counts(clients, CONFIRM):
        assert abs(seen["b1"] - CONFIRM / 3) <= 2, seen  # today: a third, NOT_SERVING or not

    await backends[1].set_serving(True)
    checked = grpc_service(backends, (1, 1, 1), upstream_protocol=http2,
                           health_check=check(control_plane=True))  # fmt: skip
    plane.source.set({"web": checked})  # the clients' resources are the same: no new push
    probes_from, probed_at = backends[0].health_checks, time.monotonic()
    await verdicts(plane, {"healthy"}, 3)  # every backend checked once, all SERVING

    await backends[1].set_serving(False)
    left = await until(clients, lambda seen: all(s["b1"] == 0 for s in seen))
    calls_at_b1 = backends[1].grpc_calls
    for seen in await counts(clients, CONFIRM):
        assert seen["b1"] == 0, seen
        assert seen["b0"] + seen["b2"] == CONFIRM
    assert backends[1].grpc_calls == calls_at_b1  # b1 itself saw none of the 600
    debug = await plane_admin(plane, "/debug/health")
    assert debug["verdicts"]["web"][f"127.0.0.1:{backends[1].grpc_port}"] == "unhealthy"

    await backends[1].set_serving(True)
    returned = await until(clients, lambda seen: all(s["b1"] > 0 for s in seen))
    probes = backends[0].health_checks - probes_from
    window = time.monotonic() - probed_at
    per_interval = probes / (window / INTERVAL_S)
    print(
        f"\nhealth (grpc, interval {INTERVAL_S}s, unhealthy after {UNHEALTHY_AFTER},"
        f" healthy after {HEALTHY_AFTER}): left rotation of grpcio and grpc-go in {left:.2f}s,"
        f" returned in {returned:.2f}s; {probes} checks at b0 in {window:.2f}s ="
        f" {per_interval:.2f} per interval"
    )
    assert left >= (UNHEALTHY_AFTER - 1) * INTERVAL_S  # never before the threshold
    assert returned >= (HEALTHY_AFTER - 1) * INTERVAL_S
    assert 1 <= probes <= window / INTERVAL_S + 1  # one check per interval, at most
