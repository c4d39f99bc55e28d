"""Weights that follow live load, end to end with real clients: each client's LRS reports are
the only input of the weights xdscp computes (the registrations carry no load), and the
client balances by the weights serve pushes back (`lrs_adaptive.py` sets the stack up).

Capacities 1 : 2 : 4: a backend's utilization is its rate over its capacity, so each estimate
LRS rate / utilization is the capacity whatever rate the client gives it; serve's weights
converge to 1 : 2 : 4 and the shares to 1/7, 2/7, 4/7. Then one capacity changes (100 → 400,
`POST /_demo/capacity`): the weights follow to 4 : 2 : 4, the shares to 2/5, 1/5, 2/5. The
loops wait on serve's pushed weights (`/debug/weights`) after each window of calls.

The bounds. Serve pushes nothing while every weight would move by less than the hysteresis
(0.1 of itself), so the served weights settle with shares within SHARE_BAND (0.05) of the
capacities' (`lrs_adaptive.py` says why): the loop waits for that. The measured shares are
then compared with the shares the served weights predict: Envoy's EDF is deterministic
(under one call per backend per window), 0.02; gRPC picks each call's locality (one per
endpoint) at random by weight: 5 sigma of a share of 4/7 over MEASURE calls, 0.045. So the
shares are within 0.07 (Envoy) and 0.095 (gRPC) of 1/7, 2/7, 4/7 by construction; the
figures printed show how close they really are. Printed: windows, seconds and pushes to
converge and to follow; the served weights; shares measured vs predicted vs capacities.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.grpc_clients import ClientProcesses
from tests.integration.orca.lrs_adaptive import (
    ADAPTIVE_FLAGS,
    AFTER,
    BEFORE,
    SHARE_BAND,
    Reached,
    expected,
    predicted,
    reach,
    set_env,
)
from tests.integration.orca.served import SERVICE, Send, Served, served, through_envoy
from xdscp.clients import XdsServer, grpc_bootstrap

pytestmark = [pytest.mark.etcd, pytest.mark.grpc, pytest.mark.slow]

WINDOW = 200
MEASURE = 3000
MAX_WINDOWS = 150  # 30 000 calls: many report intervals and push intervals at any speed
CLIENT_BOUND = {"envoy": 0.02, "go": 0.045, "python": 0.045}  # measured vs served weights
KINDS = [
    pytest.param("envoy", marks=pytest.mark.envoy),
    pytest.param("go", marks=pytest.mark.go),
    pytest.param("python"),
]


@pytest.fixture
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[ClientProcesses]:
    """The proxyless client processes a test starts (the grpc-go binary built first)."""
    kind = request.node.callspec.params["kind"]
    binary = request.getfixturevalue("go_client_binary") if kind == "go" else ""
    started = ClientProcesses(lambda: binary)
    try:
        yield started
    finally:
        await started.stop()


def _print(kind: str, label: str, reached: Reached, wanted: list[float]) -> None:
    print(
        f"\n{kind} LRS-adaptive {label}: weights {reached.weights} after {reached.windows}"
        f" windows of {WINDOW}, {reached.seconds:.1f} s, {reached.pushes} pushes; shares"
        f" {[round(s, 4) for s in reached.shares]} (capacities {[round(w, 4) for w in wanted]},"
        f" served weights {[round(p, 4) for p in predicted(reached.weights)]})"
    )


def _check(reached: Reached, capacity: dict[str, float], kind: str) -> None:
    bound = CLIENT_BOUND[kind]
    assert reached.shares == pytest.approx(predicted(reached.weights), abs=bound)
    assert reached.shares == pytest.approx(expected(capacity), abs=SHARE_BAND + bound)


async def _follow(stack: Served, send: Send, kind: str) -> None:
    first = await reach(stack, send, BEFORE, window=WINDOW, measure=MEASURE,
                        max_windows=MAX_WINDOWS)  # fmt: skip
    _print(kind, "capacities 1:2:4", first, expected(BEFORE))
    _check(first, BEFORE, kind)
    changed = await asyncio.to_thread(stack.backends[0].post, "/_demo/capacity?rps=400")
    assert changed["capacity"] == 400
    second = await reach(stack, send, AFTER, window=WINDOW, measure=MEASURE,
                         max_windows=MAX_WINDOWS)  # fmt: skip
    _print(kind, "capacities 4:2:4", second, expected(AFTER))
    _check(second, AFTER, kind)
    for node, status in stack.nodes().items():
        assert not status.get("last_nack"), (node, status)


@pytest.mark.parametrize("kind", KINDS)
async def test_weights_follow_the_clients_lrs_reports(
    etcd_server: EtcdServer,
    tmp_path: Path,
    clients: ClientProcesses,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Envoy (per-endpoint LRS, the utilization a named metric), grpc-go and grpcio (per
    locality, the utilization in the locality's A85 fields): each alone drives the weights
    to the capacities and after a change of one."""
    set_env(monkeypatch)
    async with served(etcd_server, tmp_path, ADAPTIVE_FLAGS, with_envoy=kind == "envoy") as stack:
        if kind == "envoy":
            async with through_envoy(stack) as send:
                await _follow(stack, send, kind)
            return
        bootstrap = grpc_bootstrap(f"{kind}-0", (XdsServer("127.0.0.1", stack.xds_port),))
        client = await clients.start(
            kind, bootstrap, service=SERVICE, stderr=tmp_path / f"{kind}.log"
        )

        async def send(n: int) -> Counter[str]:
            return await client.counts(n, concurrency=4)

        await _follow(stack, send, kind)
