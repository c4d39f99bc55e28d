"""The stack of `served.py` with weights xdscp computes from its clients' LRS reports alone.

Three `xdscp backend --capacity` processes (100, 200, 400 requests/s, ORCA utilization =
rate / capacity in the `endpoint-load-metrics-bin` trailer) registered by `xdscp register`
with equal weights and NO load, `xdscp policy set web --lb weighted_round_robin
--adaptive-weights ...`, `xdscp serve` told (environment) to have clients report every
second and to decide every 0.25 s. The only input of the computed weights is what the
clients report over LRS.

Helpers read what serve decided (`/debug/weights`), how many weightings it pushed (its
`xdscp_adaptive_weight_pushes_total`), and wait on those, never on time.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from tests.integration.orca.harness import XDSCP, BackendProcess
from tests.integration.orca.served import SERVICE, Send, Served, shares

MIN_PUSH_INTERVAL_S = 1.0
STALE_AFTER_S = 5.0
HYSTERESIS = 0.1  # AdaptiveSettings' default: no push while every weight moves by less
ADAPTIVE_FLAGS = (
    "--lb", "weighted_round_robin", "--upstream-protocol", "http2", "--adaptive-weights",
    "--adaptive-min-push-interval", f"{MIN_PUSH_INTERVAL_S:g}s",
    "--adaptive-stale-after", f"{STALE_AFTER_S:g}s",
)  # fmt: skip
REPORT_INTERVAL_S = 1.0  # clients report every second
SERVE_ENV = {
    "XDSCP_XDS__WEIGH_INTERVAL": "0.25",
    "XDSCP_XDS__LOAD_REPORTING__INTERVAL": f"{REPORT_INTERVAL_S:g}",
    "XDSCP_XDS__LOAD_REPORTING__STALE_AFTER": "3",
}
BEFORE = {"one": 100.0, "two": 200.0, "four": 400.0}
AFTER = {"one": 400.0, "two": 200.0, "four": 400.0}  # POST /_demo/capacity?rps=400 to one
# Nothing is pushed while every weight (in registered units: their sum is kept) would move by
# less than HYSTERESIS of itself, so the loop may hold weights each up to 0.1 off its target,
# in opposite directions: one 0.9 x, another 1.1 x. Shares of 1/7, 2/7, 4/7 (or 2/5, 1/5, 2/5)
# then move by at most ~0.048. The band the weights' shares settle in: 0.05 of the capacities'.
SHARE_BAND = 0.05


def set_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What serve (a subprocess inheriting the environment) is told: report and decide fast."""
    for name, value in SERVE_ENV.items():
        monkeypatch.setenv(name, value)


def expected(capacity: Mapping[str, float]) -> list[float]:
    """Each backend's share of the capacity, in the order given."""
    return [c / sum(capacity.values()) for c in capacity.values()]


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def served_weights(stack: Served) -> list[int] | None:
    """The weights serve serves `web`'s backends (SPECS order; None: not adaptive yet)."""
    document = json.loads(_get(stack.admin_port, "/debug/weights"))
    found = document["services"].get(SERVICE)
    if found is None or found["served"] is None:
        return None
    by_port = {int(k.rpartition(":")[2]): w for k, w in found["served"].items()}
    if not all(b.grpc_port in by_port for b in stack.backends):
        return None
    return [by_port[b.grpc_port] for b in stack.backends]


_PUSHES = re.compile(r'^xdscp_adaptive_weight_pushes_total\{service="web"\} (\S+)$', re.M)


def pushes(stack: Served) -> int:
    """How many weightings of `web` serve pushed."""
    found = _PUSHES.search(_get(stack.admin_port, "/metrics"))
    return 0 if found is None else int(float(found[1]))


def near(weights: list[int] | None, capacity: Mapping[str, float], band: float) -> bool:
    """The shares `weights` give within `band` of the capacities' shares."""
    if weights is None:
        return False
    wanted = expected(capacity)
    return all(abs(p - w) <= band for p, w in zip(predicted(weights), wanted, strict=True))


def predicted(weights: list[int]) -> list[float]:
    """The shares a weighted round robin over `weights` gives."""
    return [w / sum(weights) for w in weights]


@dataclass(frozen=True)
class Reached:
    """Windows sent until the served weights neared the capacities: how many windows, the
    seconds and pushes it took, the weights then, and the next measured window's shares."""

    windows: int
    seconds: float
    pushes: int
    weights: list[int]
    shares: list[float]


async def reach(
    stack: Served, send: Send, capacity: Mapping[str, float], *, window: int, measure: int,
    max_windows: int,
) -> Reached:  # fmt: skip
    """Send windows of `window` calls (the load the clients report) until serve's weights
    give shares within SHARE_BAND of `capacity`'s, at most `max_windows`; then `measure`
    calls, whose shares are returned if serve pushed nothing meanwhile (else the windows go
    on: a push right after one that reached the band corrects a lagging estimate). A count
    of windows, never a time, ends the loop."""
    started, pushed = time.monotonic(), await asyncio.to_thread(pushes, stack)
    seen: list[list[int] | None] = []
    first: tuple[int, float, int] | None = None  # window, seconds, pushes: first in the band
    for n in range(1, max_windows + 1):
        await send(window)
        before = await asyncio.to_thread(pushes, stack)  # read first: no push unseen below
        weights = await asyncio.to_thread(served_weights, stack)
        seen.append(weights)
        if weights is None or not near(weights, capacity, SHARE_BAND):
            continue
        if first is None:
            first = (n, time.monotonic() - started, before - pushed)
        measured = shares(await send(measure), stack.names)
        if await asyncio.to_thread(pushes, stack) == before:
            return Reached(*first, weights, measured)
    raise AssertionError(f"serve's weights never neared {dict(capacity)}: {seen}")


def restart_without_orca(backend: BackendProcess) -> BackendProcess:
    """`backend` killed and started again on its ports with no `--capacity`: it answers as
    before but reports no load (no ORCA trailer)."""
    backend.process.kill()
    backend.process.wait(timeout=60)
    args = [XDSCP, "backend", "--name", backend.name, "--http-port", str(backend.http_port),
            "--grpc-port", str(backend.grpc_port)]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(f"backend {backend.name}:"):
            break
    else:
        raise AssertionError(f"backend {backend.name} exited with {process.wait()}")
    backend.process = process
    return backend
