"""Real clients report their load to `xdscp serve`'s LRS, and the plane's load book matches
what the clients counted themselves.

One weighted-round-robin service `web` (weights 1, 2, 7) over three gRPC demo backends that
report their utilization through ORCA (the `endpoint-load-metrics-bin` trailer), served to a
real Envoy (bootstrap from `xdscp bootstrap envoy`'s code: `load_stats_config` on the xDS
cluster), a grpcio client and a grpc-go client (CDS `lrs_server: {self: {}}`), with a 1 s
reporting interval. Each client sends bounded traffic once its LRS stream has started; the
book's per-reporter totals, per endpoint, equal each client's own counts (gRPC clients may
add the one call their harness makes before the test's: a bound of one request per client),
and while all three send traffic the measured shares at /api/services are the clients'
(within 0.1). The raw LoadStatsRequests are kept to state what each client sends: per
endpoint or per locality, and whether the ORCA utilization reaches LRS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync, who_through_envoy
from tests.harness.plane import EnvoyStarter, Plane, plane_admin, running_backends, running_plane
from xdscp.cli import main
from xdscp.config.options import LoadReporting
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.load.lrs import LrsStream
from xdscp.model import LbPolicy, UpstreamProtocol
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for

pytestmark = [pytest.mark.grpc, pytest.mark.envoy, pytest.mark.go]

WEIGHTS = (1, 2, 7)
CALLS = 300  # per client
SHARE_BOUND = 0.1  # measured share (one 1 s interval, three clients) vs the clients' counts


class Captured:
    """Every LoadStatsRequest the plane's LRS streams took, by node id."""

    def __init__(self) -> None:
        self.requests: dict[str, list[Any]] = {}

    def count(self, node: str) -> int:
        return len(self.requests.get(node, []))


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """LrsStream.on_request, wrapped to keep each raw request (read-only)."""
    seen = Captured()
    original = LrsStream.on_request

    def on_request(self: LrsStream, request: Any) -> Any:
        answer = original(self, request)
        seen.requests.setdefault(str(self.node), []).append(request)
        return answer

    monkeypatch.setattr(LrsStream, "on_request", on_request)
    return seen


@pytest.fixture
async def plane(captured: Captured) -> AsyncIterator[Plane]:
    """The plane, reports every second, nothing forgotten for an hour (stream ends aside)."""
    del captured  # installed before the plane starts
    source = MemorySource({})
    load = LoadReporting(interval_s=1.0, stale_after_s=3600.0)
    async with running_plane(source, source, load=load) as running:
        yield running


@pytest.fixture
async def orca_backends() -> AsyncIterator[list[Backend]]:
    """Three gRPC demo backends reporting utilization = rate / 1000 rps (ORCA)."""
    configs = [BackendConfig(f"b{i}", http_port=-1, capacity=1000.0) for i in range(3)]
    async with running_backends(configs) as started:
        yield started


def _reported(plane: Plane, node: str) -> Counter[str]:
    """Every request `node`'s LRS reports counted per endpoint of `web` (all its streams)."""
    out: Counter[str] = Counter()
    for (reporter, cluster, endpoint), held in plane.plane.load.book.held().items():
        if reporter.rpartition("#")[0] == node and cluster == "web":
            out[endpoint] += held.total
    return out


async def _through_envoy(plane: Plane, n: int) -> Counter[str]:
    async with who_through_envoy(plane) as who:
        return Counter([await who() for _ in range(n)])


async def test_envoy_grpcio_and_grpc_go_reports_match_their_own_counts(  # noqa: PLR0917 - fixtures
    plane: Plane,
    orca_backends: list[Backend],
    envoy: EnvoyStarter,
    grpc_client: ClientStarter,
    go_client_binary: str,
    captured: Captured,
) -> None:
    del go_client_binary  # built before the loop runs (see the grpc conftest)
    key = {b.config.name: f"127.0.0.1:{b.grpc_port}" for b in orca_backends}
    service = grpc_service(orca_backends, WEIGHTS, lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
                           upstream_protocol=UpstreamProtocol.HTTP2)  # fmt: skip
    plane.source.set({"web": service})
    await envoy()
    python, go = await grpc_client("python"), await grpc_client("go")
    nodes = ("envoy-0", python.node_id, go.node_id)
    for node in nodes:
        await in_sync(plane, node, within=30)
    # Envoy counts from the response that starts its reports: its second request shows it
    # had that response. gRPC clients start their LRS stream with the cluster.
    await wait_for(lambda: captured.count("envoy-0") >= 2, 60)
    await wait_for(lambda: all(captured.count(n) >= 1 for n in nodes[1:]), 60)

    counted = {
        "envoy-0": await _through_envoy(plane, CALLS),
        python.node_id: await python.counts(CALLS, concurrency=4),
        go.node_id: await go.counts(CALLS, concurrency=4),
    }
    for node, counts in counted.items():
        want = Counter({key[name]: n for name, n in counts.items()})
        await wait_for(lambda n=node: sum(_reported(plane, n).values()) >= CALLS, 60)
        reported = _reported(plane, node)
        extra = 0 if node == "envoy-0" else 1  # the harness's first call, before the test's
        assert set(reported) <= set(key.values()), reported
        assert all(0 <= reported[k] - want[k] <= extra for k in key.values()), (
            node,
            reported,
            want,
        )
        assert sum(reported.values()) - CALLS <= extra, (node, reported, want)
        print(f"LRS {node}: reported {dict(reported)} counted {dict(want)}")
    _state_what_was_sent(captured, nodes)
    await _measured_shares_follow_the_clients(plane, key, python, go)


def _state_what_was_sent(captured: Captured, nodes: tuple[str, ...]) -> None:
    """Envoy: per endpoint, with the backends' ORCA utilization as the endpoint's named
    metric `application_utilization`. grpcio and grpc-go: per locality only (one locality
    per endpoint here, so still per endpoint), the utilization in the locality's own
    `application_utilization` (gRFC A85, asked by the cluster's
    `lrs_report_endpoint_metrics`), no `load_metric_stats` (the backends send no named
    metrics: A64 is not exercised). Printed with -s."""
    for node in nodes:
        per_endpoint = per_locality = utilization = named = 0
        clusters = set()
        for request in captured.requests.get(node, []):
            for stats in request.cluster_stats:
                clusters.add(stats.cluster_name)
                if stats.cluster_name != "web":
                    continue
                for locality in stats.upstream_locality_stats:
                    per_locality += 1
                    per_endpoint += len(locality.upstream_endpoint_stats)
                    named += len(locality.load_metric_stats)
                    utilization += locality.HasField("application_utilization")
                    for endpoint in locality.upstream_endpoint_stats:
                        named += len(endpoint.load_metric_stats)
        print(f"LRS {node}: localities={per_locality} endpoints={per_endpoint}"
              f" locality_application_utilization={utilization} named_metrics={named}"
              f" clusters={sorted(clusters)}")  # fmt: skip
        if node == "envoy-0":
            assert per_endpoint > 0
            assert named > 0
        else:
            assert per_locality > 0
            assert per_endpoint == 0
            assert utilization > 0


async def _measured_shares_follow_the_clients(
    plane: Plane, key: dict[str, str], python: Any, go: Any
) -> None:
    """While the three clients send, /api/services shows each endpoint's measured share
    (one interval's requests per second) within SHARE_BOUND of what the clients counted."""
    counted: Counter[str] = Counter()
    running = True

    async def send(call: Any) -> None:
        while running:
            counted.update(await call())

    async def envoy_calls() -> Counter[str]:
        return await _through_envoy(plane, 50)

    senders = [
        asyncio.create_task(send(envoy_calls)),
        asyncio.create_task(send(lambda: python.counts(100, concurrency=4))),
        asyncio.create_task(send(lambda: go.counts(100, concurrency=4))),
    ]
    try:
        shown = await _measured_while_sending(plane)
        admin = f"127.0.0.1:{plane.plane.admin.port}"
        status = await asyncio.to_thread(CliRunner().invoke, main, ["status", "--admin", admin])
    finally:
        running = False
        for task in senders:
            with contextlib.suppress(Exception):
                await task
    total = sum(counted.values())
    for name, endpoint in key.items():
        row = shown[endpoint]
        assert row["measured_rps"] > 0, row
        assert abs(row["measured_share"] - counted[name] / total) <= SHARE_BOUND, (shown, counted)
        assert row["predicted_share"] == pytest.approx(WEIGHTS[int(name[1])] / 10, abs=0.02)
    print(f"measured {shown} counted {dict(counted)}")
    assert status.exit_code == 0, status.output
    assert "measured load of 1 of 1 service(s)" in status.output
    for endpoint in key.values():  # xdscp status: weight, predicted, measured, rps
        (line,) = [line for line in status.output.splitlines() if endpoint in line]
        assert line.count("%") == 2, status.output


async def _measured_while_sending(plane: Plane) -> dict[str, dict[str, Any]]:
    """/api/services' endpoints of `web`, once every one shows a measured rate."""
    shown: dict[str, dict[str, Any]] = {}

    async def measured() -> bool:
        services = (await plane_admin(plane, "/api/services"))["services"]
        (web,) = [s for s in services if s["name"] == "web"]
        shown.clear()
        shown.update({e["key"]: e for e in web["endpoints"]})
        return all((e["measured_rps"] or 0) > 0 for e in web["endpoints"])

    await wait_for(measured, 60)
    return shown
