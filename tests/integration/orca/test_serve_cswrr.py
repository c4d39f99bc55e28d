"""`client_side_weighted_round_robin` through `xdscp serve`, as a user sets it up: three
`xdscp backend --capacity` processes (100, 200, 400 requests/s) registered with equal weights
by `xdscp register`, the policy stored by `xdscp policy set web --lb
client_side_weighted_round_robin --blackout-period 1s --weight-update-period 100ms
--upstream-protocol http2`, and one client of the plane per test: a real Envoy, a grpc-go
and a grpcio proxyless client.

Each backend reports its rate and utilization rate / capacity, with each call (the trailer
`endpoint-load-metrics-bin`) or, with `--oob-load-report --oob-reporting-period 1s`, over
its OpenRcaService stream; a client's weight rate / utilization is then the capacity whatever
load it sends: the shares converge to 1/7, 2/7, 4/7. Then one capacity changes (100 → 400 by `POST
/_demo/capacity`) and the shares must follow to 2/5, 1/5, 2/5. The loops are counts of calls
(windows), never times; the seconds each took are printed beside the prediction of the
reference model (`xdscp.balancer.load_aware`). No node NACKs; each gRPC client logs the
`weighted_round_robin` picker it built, and its `policy_notes` name the report path; Envoy
counts the out-of-band reports it received.

The bound, 0.03 of each share: with fixed weights each client's scheduler (Envoy's EDF,
gRPC's static stride scheduler) is deterministic and off by under one call per endpoint per
window; the weights are the capacities (rate / (rate / capacity)) to Envoy's integer
truncation, 1 % of a weight of 100; a window straddling a change is not the one measured.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.grpc_clients import ClientProcesses, GrpcClient
from tests.integration.orca.served import (
    CSWRR_FLAGS,
    SERVICE,
    Send,
    Served,
    Settled,
    served,
    settle,
    through_envoy,
)
from xdscp.balancer.load_aware import OrcaSettings, converge, follow
from xdscp.clients import XdsServer, grpc_bootstrap

pytestmark = [pytest.mark.etcd, pytest.mark.grpc, pytest.mark.slow]

BOUND = 0.03
WINDOW = 350
MAX_WINDOWS = 100  # 35 000 calls: out of band, weights need two reports 1 s apart (the
# blackout) and 20 windows took 3 s here: a window count is no proxy for that time
SETTINGS = OrcaSettings(blackout_period_s=1.0, weight_update_period_s=0.1)
BEFORE = {"one": 100.0, "two": 200.0, "four": 400.0}
AFTER = {"one": 400.0, "two": 200.0, "four": 400.0}


def _expected(capacity: dict[str, float]) -> list[float]:
    return [c / sum(capacity.values()) for c in capacity.values()]


def _predicted(report_every_s: float) -> tuple[float | None, float | None]:
    """The reference model's seconds to settle from equal weights, and to follow the change
    (weights updated every 0.1 s; reports every `report_every_s`)."""
    first = converge(
        BEFORE, 300.0, SETTINGS, window_s=0.1, duration_s=20.0, report_every_s=report_every_s
    ).settled_at
    return first, follow(
        BEFORE, AFTER, 300.0, SETTINGS, window_s=0.1, report_every_s=report_every_s
    )


def _print(
    label: str, kind: str, settled: Settled, expected: list[float], predicted: float | None
) -> None:
    figures = ", ".join(
        f"{s:.4f} (expected {e:.4f})" for s, e in zip(settled.after, expected, strict=True)
    )
    print(
        f"\n{kind} {label}: settled after {len(settled.windows)} windows,"
        f" {settled.seconds:.1f} s (predicted {predicted} s at most, + one window); next"
        f" window's shares {figures}"
    )


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


# What each client logs (TRACE_ENV) when it builds its weighted round robin (A58) picker.
BUILT = {
    "go": 'Creating child policy of type "weighted_round_robin"',
    "python": '"weighted_round_robin": {',
}


async def _sender(
    stack: Served, kind: str, clients: ClientProcesses, tmp: Path
) -> tuple[Send, GrpcClient]:
    bootstrap = grpc_bootstrap(f"{kind}-0", (XdsServer("127.0.0.1", stack.xds_port),))
    client = await clients.start(kind, bootstrap, service=SERVICE, stderr=tmp / f"{kind}.log")

    async def send(n: int) -> Counter[str]:
        return await client.counts(n, concurrency=4)

    return send, client


def _no_nack(stack: Served) -> None:
    for node, status in stack.nodes().items():
        assert not status.get("last_nack"), (node, status)
        assert all(t["in_sync"] for t in status["types"].values()), (node, status)


async def _follow(stack: Served, send: Send, kind: str, report_every_s: float) -> None:
    """Converge to 1/7, 2/7, 4/7; change a capacity; converge to 2/5, 1/5, 2/5."""
    predicted = _predicted(report_every_s)
    first = await settle(
        send, stack.names, _expected(BEFORE), BOUND, window=WINDOW, max_windows=MAX_WINDOWS
    )
    _print("capacities 1:2:4", kind, first, _expected(BEFORE), predicted[0])
    assert first.after == pytest.approx(_expected(BEFORE), abs=BOUND)
    if stack.envoy is not None:  # Envoy's own weights are the capacities' ratios
        weights = list((await asyncio.to_thread(stack.envoy_weights)).values())
        assert sorted(w / min(weights) for w in weights) == pytest.approx([1, 2, 4], rel=0.02)
    changed = await asyncio.to_thread(stack.backends[0].post, "/_demo/capacity?rps=400")
    assert changed["capacity"] == 400
    second = await settle(
        send, stack.names, _expected(AFTER), BOUND, window=WINDOW, max_windows=MAX_WINDOWS
    )
    # no new blackout (the endpoint keeps reporting): the next report, the next update
    _print("capacities 4:2:4", kind, second, _expected(AFTER), predicted[1])
    assert second.after == pytest.approx(_expected(AFTER), abs=BOUND)
    _no_nack(stack)


KINDS = [
    pytest.param("envoy", marks=pytest.mark.envoy),
    pytest.param("go", marks=pytest.mark.go),
    pytest.param("python"),
]
OOB_FLAGS = ("--oob-load-report", "--oob-reporting-period", "1s")
OOB_RECEIVED = f"cluster.{SERVICE}.lb_orca_oob.reports_received"


@pytest.mark.parametrize("oob", [False, True], ids=["per-call", "out-of-band"])
@pytest.mark.parametrize("kind", KINDS)
async def test_shares_follow_capacities_set_through_serve(
    etcd_server: EtcdServer, tmp_path: Path, clients: ClientProcesses, kind: str, oob: bool
) -> None:
    """Each client, configured by serve alone, splits by the backends' capacities and follows
    a change of one: by the per-call reports, or by the out-of-band stream (`--oob-load-report`);
    nothing is NACKed."""
    policy = (*CSWRR_FLAGS, *(OOB_FLAGS if oob else ()))
    label = f"{kind} {'OOB' if oob else 'per-call'}"
    async with served(etcd_server, tmp_path, policy, with_envoy=kind == "envoy") as stack:
        every = 1.0 if oob else SETTINGS.weight_update_period_s
        if kind == "envoy":
            async with through_envoy(stack) as send:
                await _follow(stack, send, label, every)
            if oob:  # Envoy read the backends' OpenRcaService streams
                received = await asyncio.to_thread(stack.envoy_stat, OOB_RECEIVED)
                print(f"out-of-band reports received by Envoy: {received}")
                assert received >= len(stack.backends)
        else:
            send, client = await _sender(stack, kind, clients, tmp_path)
            await _follow(stack, send, label, every)
            assert BUILT[kind] in client.log(), client.log()[-3000:]
            (note,) = stack.nodes()[f"{kind}-0"]["policy_notes"][SERVICE]
            assert ("OpenRcaService" if oob else "trailer") in note, note


ZONES = ("a", "a", "b")  # one and two share a locality, four is alone in another
# gRPC picks the locality at random by weight: over a window of n calls the share of the lone
# endpoint of b (p = 1/3) has a sigma of sqrt(p (1 - p) / n), the others' less (a's split is
# deterministic); 5 sigma of it still tells 2/9, 4/9, 1/3 from Envoy's 1/7, 2/7, 4/7 (>= 0.08)
LOCALITY_WINDOW = 3000
LOCALITY_BOUND = 5 * math.sqrt(1 / 3 * 2 / 3 / LOCALITY_WINDOW)  # 0.043
# Envoy weighs a priority's endpoints together; gRPC picks a locality by its endpoint count
# (a: 2/3, b: 1/3), then weighs the locality's endpoints by their reports (one 1 : two 2).
LOCALITY_SHARES = {
    "envoy": _expected(BEFORE),
    "go": [2 / 3 * 1 / 3, 2 / 3 * 2 / 3, 1 / 3],
    "python": [2 / 3 * 1 / 3, 2 / 3 * 2 / 3, 1 / 3],
}


@pytest.mark.parametrize("kind", KINDS)
async def test_localities_split_as_each_client_weighs_them(
    etcd_server: EtcdServer, tmp_path: Path, clients: ClientProcesses, kind: str
) -> None:
    """Backends in two zones: Envoy still splits by capacity (1/7, 2/7, 4/7); each gRPC
    client picks a zone by its endpoint count and splits it by capacity (2/9, 4/9, 1/3), as
    `xdscp simulate --client grpc` predicts and its `policy_notes` say."""
    wanted = LOCALITY_SHARES[kind]
    bound = BOUND if kind == "envoy" else LOCALITY_BOUND  # Envoy's EDF draws nothing at random
    async with served(etcd_server, tmp_path, with_envoy=kind == "envoy", zones=ZONES) as stack:
        if kind == "envoy":
            async with through_envoy(stack) as send:
                settled = await settle(send, stack.names, wanted, bound, window=WINDOW,
                                       max_windows=MAX_WINDOWS)  # fmt: skip
        else:
            send, _ = await _sender(stack, kind, clients, tmp_path)
            settled = await settle(
                send, stack.names, wanted, bound, window=LOCALITY_WINDOW, max_windows=6
            )
            notes = stack.nodes()[f"{kind}-0"]["policy_notes"][SERVICE]
            assert any("picks a locality by its weight" in note for note in notes), notes
        _print("zones a, a, b", kind, settled, wanted, _predicted(0.1)[0])
        assert settled.after == pytest.approx(wanted, abs=bound)
        _no_nack(stack)
