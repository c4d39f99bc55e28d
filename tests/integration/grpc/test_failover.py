"""Failover and drain measured on real clients: Envoy, grpcio and grpc-go side by side.

Priority 0 holds b0, b1, b2 with b0 and b1 unhealthy; priority 1 holds b3. Envoy keeps
140 * 1 // 3 = 46 % on b2 and spills 54 % to b3; gRPC clients, which implement no
overprovisioning, get that split from xdscp as weighted localities. Each client's measured
shares must match the reference prediction within 5 sigma (binomial)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import grpc
import pytest

from tests.harness.grpc_clients import ClientStarter, in_sync, who_through_envoy
from tests.harness.plane import EnvoyStarter, Plane
from xdscp.balancer import build_balancer, expected_shares
from xdscp.demo.backend import Backend
from xdscp.model import BalancingPolicy, Endpoint, Health, Service, UpstreamProtocol
from xdscp.testing import wait_for
from xdscp.translate import cluster_for, load_assignment_for

pytestmark = [pytest.mark.grpc, pytest.mark.envoy]
CALLS = 2000


def _failover_service(backends: list[Backend]) -> Service:
    health = (Health.UNHEALTHY, Health.UNHEALTHY, Health.HEALTHY)
    endpoints = [
        Endpoint("127.0.0.1", b.grpc_port, health=h) for b, h in zip(backends, health, strict=False)
    ]
    endpoints.append(Endpoint("127.0.0.1", backends[3].grpc_port, priority=1))
    policy = BalancingPolicy(upstream_protocol=UpstreamProtocol.HTTP2)
    return Service("web", tuple(endpoints), policy)


def _predicted(service: Service, backends: list[Backend]) -> dict[str, float]:
    """Envoy's shares from the reference balancer, by backend name."""
    lb = build_balancer(cluster_for(service), load_assignment_for(service))
    names = {f"127.0.0.1:{b.grpc_port}": b.config.name for b in backends}
    return {names[key]: share for key, share in expected_shares(lb).items()}


def _within_5_sigma(label: str, observed: Counter[str], predicted: dict[str, float]) -> None:
    total = sum(observed.values())
    print(f"{label}: " + ", ".join(
        f"{name} {observed[name]} ({100 * observed[name] / total:.1f} %, predicted "
        f"{100 * share:.1f} %)" for name, share in sorted(predicted.items())
    ))  # fmt: skip
    assert set(observed) <= set(predicted), observed
    for name, share in predicted.items():
        sigma = math.sqrt(total * share * (1 - share))
        assert abs(observed[name] - total * share) <= 5 * sigma, (label, name, observed)


async def _through_envoy(plane: Plane, calls: int) -> Counter[str]:
    async with who_through_envoy(plane) as who:
        return Counter([await who() for _ in range(calls)])


async def test_failover_shares_match_for_envoy_grpcio_and_grpc_go(
    plane: Plane,
    grpc_backends: list[Backend],
    envoy: EnvoyStarter,
    grpc_client: ClientStarter,
    go_client_binary: str,
) -> None:
    service = _failover_service(grpc_backends)
    plane.source.set({"web": service})
    predicted = _predicted(service, grpc_backends)
    assert predicted == pytest.approx({"b2": 0.46, "b3": 0.54})
    _, python, go = await asyncio.gather(envoy(), grpc_client("python"), grpc_client("go"))
    for node_id in ("envoy-0", python.node_id, go.node_id):
        await in_sync(plane, node_id)
    _within_5_sigma("envoy", await _through_envoy(plane, CALLS), predicted)
    _within_5_sigma("grpcio", await python.counts(CALLS), predicted)
    _within_5_sigma("grpc-go", await go.counts(CALLS), predicted)


class _Loop:
    """Requests sent back to back until stopped: answers by backend, and failures."""

    def __init__(self) -> None:
        self.answers: Counter[str] = Counter()
        self.failures = 0
        self.rounds = 0  # requests (Envoy) or batches (client) finished
        self.stop = asyncio.Event()

    async def through_envoy(self, plane: Plane) -> None:
        async with who_through_envoy(plane) as who:
            while not self.stop.is_set():
                try:
                    self.answers[await who()] += 1
                except grpc.aio.AioRpcError:
                    self.failures += 1
                self.rounds += 1

    async def through_client(self, client: object) -> None:
        while not self.stop.is_set():
            result = await client.call(n=50, concurrency=2)  # type: ignore[attr-defined]
            self.answers.update(result["counts"])
            self.failures += len(result["errors"])
            self.rounds += 1


async def test_drain_fails_no_request_for_envoy_and_grpcio(
    plane: Plane, grpc_backends: list[Backend], envoy: EnvoyStarter, grpc_client: ClientStarter
) -> None:
    """b0 is marked DRAINING, then removed, then stopped, while Envoy and a grpcio client
    send requests back to back: no request fails, and b0 gets none once both clients ACKed
    the DRAINING endpoint."""
    http2 = BalancingPolicy(upstream_protocol=UpstreamProtocol.HTTP2)
    b0, b1 = grpc_backends[0], grpc_backends[1]

    def web(*endpoints: Endpoint) -> dict[str, Service]:
        return {"web": Service("web", endpoints, http2)}

    plane.source.set(web(Endpoint("127.0.0.1", b0.grpc_port), Endpoint("127.0.0.1", b1.grpc_port)))
    _, python = await asyncio.gather(envoy(), grpc_client("python"))
    status = {n: await in_sync(plane, n) for n in ("envoy-0", python.node_id)}
    envoy_loop, client_loop = _Loop(), _Loop()
    tasks = [
        asyncio.create_task(envoy_loop.through_envoy(plane)),
        asyncio.create_task(client_loop.through_client(python)),
    ]
    await _wait_answers((envoy_loop, client_loop), "b0")
    plane.source.set(
        web(
            Endpoint("127.0.0.1", b0.grpc_port, health=Health.DRAINING),
            Endpoint("127.0.0.1", b1.grpc_port),
        )
    )
    for n, since in list(status.items()):
        status[n] = await in_sync(plane, n, since=since, changed="ClusterLoadAssignment")
    await _wait_rounds((envoy_loop, client_loop), 2)  # what was in flight at the ACK is done
    drained = (envoy_loop.answers["b0"], client_loop.answers["b0"])
    await _wait_answers((envoy_loop, client_loop), "b1", more=200)
    assert (envoy_loop.answers["b0"], client_loop.answers["b0"]) == drained
    plane.source.set(web(Endpoint("127.0.0.1", b1.grpc_port)))
    # gRPC was already sent b1 alone (it drops DRAINING endpoints): only Envoy's CLA changes.
    await in_sync(plane, "envoy-0", since=status["envoy-0"], changed="ClusterLoadAssignment")
    await in_sync(plane, python.node_id)
    await b0.stop()
    await _wait_answers((envoy_loop, client_loop), "b1", more=200)
    for loop in (envoy_loop, client_loop):
        loop.stop.set()
    await asyncio.gather(*tasks)
    for label, loop in (("envoy", envoy_loop), ("grpcio", client_loop)):
        print(f"drain {label}: {sum(loop.answers.values())} requests, {loop.failures} failed,"
              f" by backend {dict(loop.answers)}")  # fmt: skip
        assert loop.failures == 0


async def _wait_rounds(loops: tuple[_Loop, ...], more: int) -> None:
    targets = [loop.rounds + more for loop in loops]
    await wait_for(
        lambda: all(loop.rounds >= t for loop, t in zip(loops, targets, strict=True)), 30
    )


async def _wait_answers(loops: tuple[_Loop, ...], name: str, more: int = 1) -> None:
    targets = [loop.answers[name] + more for loop in loops]
    await wait_for(
        lambda: all(loop.answers[name] >= t for loop, t in zip(loops, targets, strict=True)), 30
    )
