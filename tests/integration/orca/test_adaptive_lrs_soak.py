"""Weights computed from a real Envoy's LRS reports hold steady for minutes, and fall back.

The stack of tests/integration/orca/lrs_adaptive.py (three `xdscp backend --capacity`
processes 100 : 200 : 400 registered with equal weights and no load, `weighted_round_robin
--adaptive-weights`, stale after 5 s, at most a push a second; serve deciding every 0.25 s,
Envoy reporting every second) under steady bounded load: windows of WINDOW calls, 4 at a
time, one after another, through Envoy.

Once the weights converged (their shares within SHARE_BAND, 0.05, of 1/7, 2/7, 4/7), the
load goes on for STEADY_S (3 minutes; `XDSCP_SOAK_SECONDS` makes it longer): after every
window the served weights' shares must stay within SHARE_BAND, and serve pushes at most
MAX_PUSHES_PER_MINUTE (the hysteresis holds settled weights: a push comes only when an
estimate leaves the band; counted from `xdscp_adaptive_weight_pushes_total`).

Then backend `one` is restarted on its ports without `--capacity`: it answers as before
but sends no ORCA report, so Envoy's LRS reports for it carry no utilization (nothing to
learn a capacity from) and its weight must fall back, once stale, to its registered weight:
in registered units 1, while `two` and `four` share what their registered weights add up to
(2) by their capacities: 750 : 500 : 1000. Waited on the served weights, to the rounding of
whole weights.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.integration.orca.lrs_adaptive import (
    ADAPTIVE_FLAGS,
    BEFORE,
    REPORT_INTERVAL_S,
    SHARE_BAND,
    STALE_AFTER_S,
    expected,
    predicted,
    pushes,
    reach,
    restart_without_orca,
    served_weights,
    set_env,
)
from tests.integration.orca.served import Send, Served, served, through_envoy

STEADY_S = max(180.0, float(os.environ.get("XDSCP_SOAK_SECONDS", "0")))
WINDOW = 200
MAX_PUSHES_PER_MINUTE = 2.0
EDS_UPDATES = "cluster.web.update_success"

pytestmark = [
    pytest.mark.envoy, pytest.mark.etcd, pytest.mark.slow,
    pytest.mark.timeout(STEADY_S + 600),
]  # fmt: skip


def _deviation(weights: list[int] | None) -> float:
    """The largest distance of the weights' shares from the capacities' (1: not served)."""
    if weights is None:
        return 1.0
    wanted = expected(BEFORE)
    return max(abs(p - w) for p, w in zip(predicted(weights), wanted, strict=True))


def _fell_back(weights: list[int] | None) -> bool:
    """`one` back at its registered weight: in registered units (two + four = 2) exactly 1,
    to the rounding of whole weights."""
    if weights is None:
        return False
    one, two, four = weights
    return abs(one * 2 / (two + four) - 1) <= 0.005


async def _steady(stack: Served, send: Send) -> tuple[float, float, int, int, list[int]]:
    """Windows for STEADY_S (the soak's length: its subject, not a wait for an event): the
    largest deviation seen, the seconds, the pushes and Envoy's EDS updates, the weights."""
    assert stack.envoy is not None
    started, pushed = time.monotonic(), await asyncio.to_thread(pushes, stack)
    eds = await asyncio.to_thread(stack.envoy_stat, EDS_UPDATES)
    worst, weights = 0.0, None
    while time.monotonic() - started < STEADY_S:
        await send(WINDOW)
        weights = await asyncio.to_thread(served_weights, stack)
        worst = max(worst, _deviation(weights))
    assert weights is not None
    took = time.monotonic() - started
    count = await asyncio.to_thread(pushes, stack) - pushed
    updates = await asyncio.to_thread(stack.envoy_stat, EDS_UPDATES) - eds
    return worst, took, count, updates, weights


async def _until_fallen_back(stack: Served, send: Send) -> tuple[int, list[int] | None]:
    """Windows until `one`'s weight is its registered one (at most 300); how many it took."""
    for n in range(1, 301):
        await send(WINDOW)
        weights = await asyncio.to_thread(served_weights, stack)
        if _fell_back(weights):
            return n, weights
    return 0, await asyncio.to_thread(served_weights, stack)


async def test_weights_from_envoy_lrs_hold_for_minutes_then_fall_back(
    etcd_server: EtcdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    async with (
        served(etcd_server, tmp_path, ADAPTIVE_FLAGS, with_envoy=True) as stack,
        through_envoy(stack) as send,
    ):
        first = await reach(stack, send, BEFORE, window=WINDOW, measure=3000, max_windows=150)
        worst, took, count, updates, weights = await _steady(stack, send)
        per_minute = count / took * 60
        stopped = time.monotonic()
        await asyncio.to_thread(restart_without_orca, stack.backends[0])
        windows, fallen = await _until_fallen_back(stack, send)
        fell_s = time.monotonic() - stopped
    print(
        f"\nsoak (Envoy LRS): converged after {first.windows} windows, {first.seconds:.1f} s,"
        f" {first.pushes} pushes, shares {[round(s, 4) for s in first.shares]}; steady"
        f" {took:.0f} s: largest share deviation {worst:.4f} (band {SHARE_BAND}), {count}"
        f" pushes = {per_minute:.2f}/min (at most {MAX_PUSHES_PER_MINUTE}), Envoy EDS"
        f" updates {updates}, weights at the end {weights}; `one` without ORCA: weights"
        f" {fallen} after {windows} windows, {fell_s:.1f} s (stale after {STALE_AFTER_S} s)"
    )
    assert worst <= SHARE_BAND
    assert per_minute <= MAX_PUSHES_PER_MINUTE
    assert windows > 0, f"`one` never fell back to its registered weight: {fallen}"
    # not before its last report with a utilization (at most an interval before the restart)
    # went stale
    assert fell_s >= STALE_AFTER_S - REPORT_INTERVAL_S
