"""Two `xdscp serve --etcd` replicas, the Envoy attached to the one that does NOT publish: the
weights still follow its clients' load, because the replicas share what their clients report.

The stack of `lrs_adaptive.py` (three `xdscp backend --capacity` processes, 100 : 200 : 400
requests/s, ORCA utilization = rate / capacity, registered by `xdscp register` with equal
weights and no load; the policy `weighted_round_robin` with adaptive weights; clients report
every second), served by two replicas. Once one replica is elected publisher, one Envoy is
started with the OTHER replica as its only xDS (and LRS) server: the publisher has no client
at all (its `xdscp_lrs_streams` is 0, asserted), so the only way its decision can follow the
load is the other replica's record under `<root>/_load/replicas/`.

The loop sends windows of calls through Envoy until the weights served by the replica Envoy
uses give shares within SHARE_BAND of 1/7, 2/7, 4/7 (the hysteresis band, see
`lrs_adaptive.py`); then both replicas must serve the same weights, imposed from the
publisher's record, and the publisher must name the other replica as the one whose load it
read. Then one capacity changes (100 → 400): the weights follow to 4 : 2 : 4 the same way.
Printed: the seconds, windows and pushes to converge and to follow, the weights, and the
shares measured through Envoy against those the weights predict. Waits on counts of calls
and on the replicas' own reports, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.serve import get_json
from tests.integration.orca.harness import backends
from tests.integration.orca.lrs_adaptive import (
    ADAPTIVE_FLAGS,
    AFTER,
    BEFORE,
    SHARE_BAND,
    Reached,
    expected,
    near,
    predicted,
    reach,
    served_weights,
    set_env,
)
from tests.integration.orca.served import SERVICE, SPECS, Served, start_serve, through_envoy
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.envoy, pytest.mark.slow]

WINDOW = 200
MEASURE = 3000
MAX_WINDOWS = 150  # 30 000 calls: many report, write and push intervals at any speed
ENVOY_BOUND = 0.02  # Envoy's EDF against the served weights (test_lrs_adaptive.py)


def _weights_status(stack: Served) -> dict[str, Any]:
    status, document = get_json(f"http://127.0.0.1:{stack.admin_port}/debug/weights")
    assert status == 200, document
    assert isinstance(document, dict)
    return document


_STREAMS = re.compile(r"^xdscp_lrs_streams (\S+)$", re.M)


def _lrs_streams(stack: Served) -> float:
    """The replica's open LRS streams (`xdscp_lrs_streams`): its clients that report."""
    url = f"http://127.0.0.1:{stack.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        found = _STREAMS.search(answer.read().decode())
    return 0.0 if found is None else float(found[1])


@contextlib.asynccontextmanager
async def _replicas(etcd: EtcdServer, tmp: Path) -> AsyncIterator[tuple[Served, Served]]:
    """Two replicas over the same backends, the policy set and the backends registered
    through the first; every process stopped on leaving."""
    with backends(SPECS) as started:
        pair = tuple(
            Served(etcd, tmp, free_port(), free_port(), free_port(), started) for _ in range(2)
        )
        try:
            for n, stack in enumerate(pair):
                stack.processes.append(await start_serve(stack, f"serve-{n}.log"))
            await asyncio.to_thread(pair[0].cli, "policy", "set", SERVICE, *ADAPTIVE_FLAGS)
            for backend in started:
                await asyncio.to_thread(pair[0].register, backend)
            yield pair[0], pair[1]
        finally:
            for stack in pair:
                if stack.envoy is not None:
                    stack.envoy.stop()
                for process in reversed(stack.processes):
                    if process.poll() is None:
                        process.kill()
                    await asyncio.to_thread(process.wait)


async def _publisher(pair: tuple[Served, Served]) -> tuple[Served, Served]:
    """(the publisher, the other) once one replica is elected."""

    def elected() -> tuple[Served, Served] | None:
        first, second = (_weights_status(s)["publishing"] for s in pair)
        if first == second:
            return None
        return pair if first else (pair[1], pair[0])

    return await wait_for(elected, 60.0, retry_on=(OSError,), what="a publisher")


def _agree(publisher: Served, other: Served) -> list[int] | None:
    """The weights both replicas serve, once the same and imposed from the record."""
    seen = [served_weights(s) for s in (publisher, other)]
    statuses = [_weights_status(s)["services"].get(SERVICE) or {} for s in (publisher, other)]
    if seen[0] is None or seen[0] != seen[1] or not all(s.get("imposed") for s in statuses):
        return None
    return seen[0]


async def test_the_publisher_follows_the_load_of_clients_attached_to_the_other_replica(
    etcd_server: EtcdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    async with _replicas(etcd_server, tmp_path) as pair:
        publisher, other = await _publisher(pair)
        options = EnvoyBootstrapOptions(
            node_id="envoy-0", servers=(XdsServer("127.0.0.1", other.xds_port),), admin_port=0
        )
        other.envoy = EnvoyProcess(envoy_bootstrap(options), tmp_path / "envoy")
        await asyncio.to_thread(other.envoy.start)
        async with through_envoy(other) as send:
            reached = await reach(
                other, send, BEFORE, window=WINDOW, measure=MEASURE, max_windows=MAX_WINDOWS
            )
            agreed = await wait_for(lambda: _agree(publisher, other), 30.0, what="one weighting")
            _print("capacities 1:2:4", reached, agreed, BEFORE)
            changed = await asyncio.to_thread(other.backends[0].post, "/_demo/capacity?rps=400")
            assert changed["capacity"] == 400
            followed = await reach(
                other, send, AFTER, window=WINDOW, measure=MEASURE, max_windows=MAX_WINDOWS
            )
            after = await wait_for(lambda: _agree(publisher, other), 30.0, what="one weighting")
            _print("capacities 4:2:4", followed, after, AFTER)
        status = await asyncio.to_thread(_weights_status, publisher)
        other_pid = str(other.processes[0].pid)
        streams = await asyncio.to_thread(_lrs_streams, publisher)
    assert streams == 0  # the publisher had no client: its decision came from the record
    assert status["publishing"]
    assert status["publisher"] != status["load_from"][0]
    assert [other_pid in replica for replica in status["load_from"]] == [True]
    assert reached.shares == pytest.approx(predicted(reached.weights), abs=ENVOY_BOUND)
    assert reached.shares == pytest.approx(expected(BEFORE), abs=SHARE_BAND + ENVOY_BOUND)
    assert near(agreed, BEFORE, SHARE_BAND)
    assert followed.shares == pytest.approx(predicted(followed.weights), abs=ENVOY_BOUND)
    assert followed.shares == pytest.approx(expected(AFTER), abs=SHARE_BAND + ENVOY_BOUND)
    assert near(after, AFTER, SHARE_BAND)


def _print(label: str, reached: Reached, agreed: list[int], capacity: dict[str, float]) -> None:
    print(
        f"\nfleet load (Envoy on the non-publisher), {label}: in band after"
        f" {reached.seconds:.1f} s, {reached.windows} windows of {WINDOW}, {reached.pushes}"
        f" pushes; weights {reached.weights}, both replicas {agreed}; shares"
        f" {[round(s, 4) for s in reached.shares]} (capacities"
        f" {[round(w, 4) for w in expected(capacity)]}, served weights"
        f" {[round(p, 4) for p in predicted(reached.weights)]})"
    )
