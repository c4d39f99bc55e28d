"""Weights xdscp computes from load, served to a real Envoy: three `xdscp backend --capacity`
processes registered in etcd with EQUAL weights, each registration carrying the backend's own
load (rate and utilization = rate / capacity, read from its `/_demo/load` and written again
every 0.25 s with `report_load`), the service's policy `weighted_round_robin` with
`adaptive_weights`. The plane is `xdscp serve --etcd` (a subprocess), deciding every 0.25 s.

Capacities 1 : 2 : 4. Each estimate `rps / utilization` is the capacity itself whatever rate a
backend receives, so the computed weights converge to 250 : 500 : 1000 (the heaviest 1000)
and Envoy's shares to 1/7, 2/7, 4/7. The test waits on Envoy's own balancer (/clusters shows
the weights), never on time, then counts the next requests' backends. The bound, 0.02 of the
shares: Envoy's weighted round robin (EDF, one worker) with fixed weights is off by under one
request per host over a count of 700. The baseline, measured in the same run before the
policy turns adaptive: the registered (equal) weights give 1/3 each.

Figures printed: the shares before and after, the requests and pushes it took, and the
pushes per minute once converged under steady load (with rps: none, asserted).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.serve import LogEvents, Serve
from tests.integration.orca.harness import BackendProcess, backends, stat, weights
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.etcd import EtcdClient
from xdscp.model import AdaptiveSettings, BalancingPolicy, LbPolicy, ReportedLoad
from xdscp.procs.envoy import EnvoyProcess
from xdscp.registry import Placement, Registered, build_registration, register, report_load
from xdscp.registry.registration import set_policy
from xdscp.testing import wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.etcd, pytest.mark.slow]

SPECS = [("one", 100.0, "text"), ("two", 200.0, "text"), ("four", 400.0, "text")]
EXPECTED = [1 / 7, 2 / 7, 4 / 7]
TARGET = [250, 500, 1000]
BOUND = 0.02
BATCH = 50
MAX_BATCHES = 600  # 30 000 requests: far beyond the few pushes it takes at any speed
STEADY_BATCHES = 300  # 15 000 requests: many push intervals at any speed
EDS_UPDATES = "cluster.web.update_success"  # EDS responses Envoy accepted for `web`
ADAPTIVE = AdaptiveSettings(min_push_interval=1.0, stale_after=10.0)


def _load(backend: BackendProcess, with_rps: bool) -> ReportedLoad:
    url = f"http://127.0.0.1:{backend.http_port}/_demo/load"
    with urllib.request.urlopen(url, timeout=30) as answer:
        document = json.loads(answer.read())
    return ReportedLoad(document["utilization"], document["rps"] if with_rps else None, time.time())


async def _refresh(
    client: EtcdClient, held: list[tuple[BackendProcess, Registered]], with_rps: bool
) -> None:
    """What each registrant does: its own load, written again every 0.25 s (until cancelled).
    A backend that served nothing yet (utilization 0) is written too: it teaches nothing."""
    while True:
        for backend, done in held:
            load = await asyncio.to_thread(_load, backend, with_rps)
            await report_load(client, done, Placement(), load)
        await asyncio.sleep(0.25)  # the registrant's refresh period, not a test condition


def _send(port: int, count: int) -> Counter[str]:
    """`count` GETs for `web` through Envoy on one kept-alive connection: answers per backend."""
    answered: Counter[str] = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"Host": "web"})
            response = connection.getresponse()
            response.read()
            answered[response.headers.get("x-backend", f"status {response.status}")] += 1
    finally:
        connection.close()
    return answered


def _shares(answered: Counter[str]) -> list[float]:
    total = sum(answered.values())
    assert set(answered) <= {name for name, _, _ in SPECS}, answered
    return [answered[name] / total for name, _, _ in SPECS]


@contextlib.contextmanager
def _serve(etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Serve, LogEvents]]:
    """`xdscp serve --etcd` deciding weights every 0.25 s (`xds.weigh_interval`, from the
    environment), its JSON log read as it comes (the `weights_pushed` events)."""
    monkeypatch.setenv("XDSCP_XDS__WEIGH_INTERVAL", "0.25")
    serve = Serve(etcd.url)
    assert serve.process.stderr is not None
    events = LogEvents(serve.process.stderr)
    try:
        yield serve, events
    finally:
        serve.stop()


async def _envoy(serve: Serve, tmp_path: Path) -> EnvoyProcess:
    options = EnvoyBootstrapOptions(
        node_id="envoy-adaptive", servers=(XdsServer("127.0.0.1", serve.xds),), admin_port=0
    )
    process = EnvoyProcess(envoy_bootstrap(options), tmp_path / "envoy")
    await asyncio.to_thread(process.start)
    return process


def _converged(proxy: EnvoyProcess, ports: list[int], band: float) -> bool:
    """Envoy's weights within `band` (relative) of 250 : 500 : 1000."""
    seen = weights_of(proxy, ports)
    return seen is not None and all(
        abs(w / t - 1) <= band for w, t in zip(seen, TARGET, strict=True)
    )


def weights_of(proxy: EnvoyProcess, ports: list[int]) -> list[int] | None:
    """Envoy's weights for the backends of `web`, in SPECS order (None: not all there)."""
    try:
        found = weights(proxy)
    except ValueError:  # `web` not there yet
        return None
    return [found[p] for p in ports] if set(ports) <= set(found) else None


@pytest.mark.parametrize("with_rps", [True, False], ids=["rps", "utilization-only"])
async def test_envoy_shares_follow_the_registered_load_to_the_capacities(
    etcd_server: EtcdServer, tmp_path: Path, with_rps: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With its rate (the estimates are exact: the weights reach 250 : 500 : 1000 to the
    unit, shares within 0.02), or its utilization alone (its weight stands for its rate,
    which a 2 s window measures with a lag: the weights settle within the hysteresis band,
    0.1, of the target, shares within 0.03; a push can still come when the lagging estimate
    leaves the band — its pushes per minute are reported, not asserted, and the shares after
    the steady phase must still be within the bound)."""
    band, bound = (0.0, BOUND) if with_rps else (ADAPTIVE.hysteresis, 0.03)
    with backends(SPECS) as running, _serve(etcd_server, monkeypatch) as (serve, events):
        ports, listener_port = [b.http_port for b in running], serve.listener
        async with (
            EtcdClient(etcd_server.config()) as client,
            contextlib.AsyncExitStack() as stack,
        ):
            held = []
            for backend in running:
                registration = build_registration("web", "127.0.0.1", backend.http_port)
                held.append(
                    (backend, await stack.enter_async_context(register(client, registration)))
                )
            await set_policy(client, "web", BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN))
            proxy = await _envoy(serve, tmp_path)
            try:
                await wait_for(lambda: weights_of(proxy, ports) == [1, 1, 1], 60.0)
                baseline = _shares(await asyncio.to_thread(_send, listener_port, 700))
                refresher = asyncio.create_task(_refresh(client, held, with_rps))
                try:
                    adaptive = BalancingPolicy(
                        lb=LbPolicy.WEIGHTED_ROUND_ROBIN, adaptive_weights=ADAPTIVE
                    )
                    await set_policy(client, "web", adaptive)
                    started, sent = time.monotonic(), 0
                    for _ in range(MAX_BATCHES):
                        await asyncio.to_thread(_send, listener_port, BATCH)
                        sent += BATCH
                        if await asyncio.to_thread(_converged, proxy, ports, band):
                            break
                    else:
                        seen = await asyncio.to_thread(weights_of, proxy, ports)
                        raise AssertionError(f"Envoy's weights {seen} never neared 1:2:4")
                    took, pushes = time.monotonic() - started, events.count("weights_pushed")
                    shares = _shares(await asyncio.to_thread(_send, listener_port, 700))
                    steady_from, steady_pushes = time.monotonic(), events.count("weights_pushed")
                    eds_before = await asyncio.to_thread(stat, proxy, EDS_UPDATES)
                    for _ in range(STEADY_BATCHES):
                        await asyncio.to_thread(_send, listener_port, BATCH)
                    steady_s = time.monotonic() - steady_from
                    per_minute = (events.count("weights_pushed") - steady_pushes) / steady_s * 60
                    eds = await asyncio.to_thread(stat, proxy, EDS_UPDATES) - eds_before
                    after = _shares(await asyncio.to_thread(_send, listener_port, 700))
                finally:
                    refresher.cancel()
                    await asyncio.gather(refresher, return_exceptions=True)
            finally:
                proxy.stop()
    print(
        f"\nadaptive (registered load, {'rps' if with_rps else 'utilization only'}):"
        f" baseline {[f'{s:.4f}' for s in baseline]};"
        f" converged after {sent} requests / {took:.1f} s / {pushes:g} pushes;"
        f" shares {[f'{s:.4f}' for s in shares]} (expected {[f'{e:.4f}' for e in EXPECTED]});"
        f" steady: {per_minute:.2f} pushes/min over {steady_s:.1f} s, Envoy EDS updates {eds},"
        f" shares after {[f'{s:.4f}' for s in after]}"
    )
    assert all(abs(s - 1 / 3) <= BOUND for s in baseline), baseline
    for seen in (shares, after):
        assert all(abs(s - e) <= bound for s, e in zip(seen, EXPECTED, strict=True)), seen
    if with_rps:  # exact estimates: nothing moves once converged
        assert per_minute == 0.0
        assert eds == 0  # a load refresh re-translates the service, to the same bytes
