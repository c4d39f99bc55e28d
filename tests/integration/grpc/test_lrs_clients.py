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
(within 0.1), beside the prediction of both client kinds mixed by their share of the load
(`predicted_by`). The raw LoadStatsRequests are kept to state what each client sends: per
endpoint or per locality, and whether the ORCA utilization reaches LRS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import wrappers_pb2

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync, who_through_envoy
from tests.harness.plane import EnvoyStarter, Plane, plane_admin, running_backends, running_plane
from xdscp.cli import main
from xdscp.config.options import LoadReporting
from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig
from xdscp.load.lrs import LrsStream
from xdscp.model import BalancingPolicy, Endpoint, LbPolicy, Service, UpstreamProtocol
from xdscp.orca import LoadReport as OrcaReport
from xdscp.orca.wire import trailer
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for
from xdscp.translate.options import LRS_METRICS

pytestmark = [pytest.mark.grpc, pytest.mark.envoy, pytest.mark.go]

WEIGHTS = (1, 2, 7)
CALLS = 300  # per client
SHARE_BOUND = 0.1  # measured share (one 1 s interval, three clients) vs the clients' counts
WINDOW = 1500  # calls the clients count while /api/services is read


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
async def plane(captured: Captured, request: pytest.FixtureRequest) -> AsyncIterator[Plane]:
    """The plane, reports every second, nothing forgotten for an hour (stream ends aside);
    its clusters ask for the ORCA metrics the test's parameter lists (default: xdscp's)."""
    del captured  # installed before the plane starts
    source = MemorySource({})
    load = LoadReporting(interval_s=1.0, stale_after_s=3600.0)
    metrics = getattr(request, "param", LRS_METRICS)
    async with running_plane(source, source, load=load, load_metrics=metrics) as running:
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
    (one interval's requests per second) within SHARE_BOUND of what the clients counted,
    and whose prediction it is beside: each client kind's fraction of the load."""
    counted: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()  # the calls each client kind counted
    running = True

    async def send(call: Any, kind: str = "grpc") -> None:
        while running:
            calls = await call()
            counted.update(calls)
            by_kind[kind] += sum(calls.values())

    async def envoy_calls() -> Counter[str]:
        return await _through_envoy(plane, 50)

    senders = [
        asyncio.create_task(send(envoy_calls, "envoy")),
        asyncio.create_task(send(lambda: python.counts(100, concurrency=4))),
        asyncio.create_task(send(lambda: go.counts(100, concurrency=4))),
    ]
    try:
        shown, load = await _measured_while_sending(plane, lambda: sum(counted.values()) >= WINDOW)
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
    rows = {
        k: (e["measured_rps"], e["measured_share"], e["predicted_share"]) for k, e in shown.items()
    }
    shares = {key[name]: round(n / total, 4) for name, n in counted.items()}
    print(f"measured (rps, share, predicted) {rows}; counted shares {shares} of {total}")
    kinds = {kind: round(n / total, 4) for kind, n in by_kind.items()}
    print(f"predicted_by {load['predicted_by']}; counted per client kind {kinds}")
    # Both kinds reported; the predicted share is their predictions mixed by their load (the
    # fractions are of one interval's rates, so only printed beside the window's counts).
    by = load["predicted_by"]
    assert set(by) == {"envoy", "grpc"}, load
    assert all(f > 0 for f in by.values()), load
    assert sum(by.values()) == pytest.approx(1, abs=0.001)
    split = {
        kind: await plane_admin(plane, f"/api/predict?service=web&client={kind}") for kind in by
    }
    for endpoint, row in shown.items():
        mixed = sum(
            fraction * next(r["share"] for r in split[kind]["split"] if r["endpoint"] == endpoint)
            for kind, fraction in by.items()
        )
        assert row["predicted_share"] == pytest.approx(mixed, abs=0.001), (by, split)
    assert status.exit_code == 0, status.output
    assert "measured load of 1 of 1 service(s)" in status.output
    for endpoint in key.values():  # xdscp status: weight, predicted, measured, rps
        (line,) = [line for line in status.output.splitlines() if endpoint in line]
        assert line.count("%") == 2, status.output


async def _measured_while_sending(
    plane: Plane, enough: Callable[[], bool]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """/api/services' endpoints of `web` and its `load`, once every endpoint shows a
    measured rate and its predicted share (computed off the event loop, shown once ready),
    once `enough` of the clients' calls were counted."""
    shown: dict[str, dict[str, Any]] = {}
    load: dict[str, Any] = {}

    async def measured() -> bool:
        if not enough():
            return False
        services = (await plane_admin(plane, "/api/services"))["services"]
        (web,) = [s for s in services if s["name"] == "web"]
        shown.clear()
        shown.update({e["key"]: e for e in web["endpoints"]})
        load.update(web["load"])
        return all(
            (e["measured_rps"] or 0) > 0 and e["predicted_share"] is not None
            for e in web["endpoints"]
        )

    await wait_for(measured, 60)
    return shown, load


NAMED = {"queue_depth": 3.0}  # an ORCA named metric every backend reports with each call
LISTED = "named_metrics.queue_depth"  # how a cluster asks for it


@contextlib.asynccontextmanager
async def _named_metric_backends(count: int) -> AsyncIterator[list[int]]:
    """`count` gRPC backends answering `Who` with their name and, in the trailer, an ORCA
    report with application_utilization 0.5 and the named metric NAMED."""
    report = OrcaReport(application_utilization=0.5, named_metrics=NAMED)
    servers, ports = [], []
    for i in range(count):

        async def who(_: Any, context: Any, name: str = f"n{i}") -> Any:
            context.set_trailing_metadata(trailer(report))
            return wrappers_pb2.StringValue(value=name)

        handler = grpc.unary_unary_rpc_method_handler(
            who,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        )
        server = grpc.aio.server()
        service, method = WHO_METHOD.strip("/").split("/")
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {method: handler})]
        )
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
    try:
        yield ports
    finally:
        for server in servers:
            await server.stop(None)


def _metric_names(captured: Captured, node: str) -> dict[str, set[str]]:
    """The metric names `node`'s reports of `web` carried: per endpoint, per locality, and
    the locality's own utilization fields that were set."""
    out: dict[str, set[str]] = {"endpoint": set(), "locality": set(), "locality_fields": set()}
    for request in captured.requests.get(node, []):
        for stats in request.cluster_stats:
            if stats.cluster_name != "web":
                continue
            for locality in stats.upstream_locality_stats:
                out["locality"] |= {m.metric_name for m in locality.load_metric_stats}
                for name in ("cpu_utilization", "mem_utilization", "application_utilization"):
                    if locality.HasField(name):
                        out["locality_fields"].add(name)
                for endpoint in locality.upstream_endpoint_stats:
                    out["endpoint"] |= {m.metric_name for m in endpoint.load_metric_stats}
    return out


@pytest.mark.parametrize("plane", [LRS_METRICS, (*LRS_METRICS, LISTED)], indirect=True)
async def test_which_orca_metrics_reach_lrs(
    plane: Plane,
    envoy: EnvoyStarter,
    grpc_client: ClientStarter,
    go_client_binary: str,
    captured: Captured,
) -> None:
    """Backends report application_utilization and a named metric (ORCA, per call); the
    clusters xdscp serves ask for the utilizations (`lrs_report_endpoint_metrics`: xdscp's
    default, application and CPU), then also for the named metric. What reaches LRS: Envoy,
    the listed metrics as named `load_metric_stats` per endpoint and per locality; grpcio
    and grpc-go, per locality only, the utilizations in the locality's own fields (gRFC A85)
    and a listed named metric as the locality's `load_metric_stats`; an unlisted named
    metric from none of them (A64's "every named metric" does not hold: these versions
    propagate what the cluster lists, as A85 says)."""
    del go_client_binary
    async with _named_metric_backends(3) as ports:
        endpoints = tuple(Endpoint("127.0.0.1", p, weight=1) for p in ports)
        policy = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
                                 upstream_protocol=UpstreamProtocol.HTTP2)  # fmt: skip
        plane.source.set({"web": Service("web", endpoints, policy)})
        await envoy()
        python, go = await grpc_client("python"), await grpc_client("go")
        nodes = ("envoy-0", python.node_id, go.node_id)
        for node in nodes:
            await in_sync(plane, node, within=30)
        await wait_for(lambda: captured.count("envoy-0") >= 2, 60)
        await _through_envoy(plane, 30)
        await python.counts(30)
        await go.counts(30)
        for node in nodes:
            await wait_for(lambda n=node: sum(_reported(plane, n).values()) >= 30, 60)
        seen = {node: _metric_names(captured, node) for node in nodes}
    print(f"\nORCA metrics in LRS: {seen}")
    listed = LISTED in plane.plane.options.translate.load_metrics
    envoy_seen = seen["envoy-0"]
    assert "application_utilization" in envoy_seen["endpoint"] & envoy_seen["locality"]
    assert envoy_seen["locality_fields"] == set()
    assert (LISTED in envoy_seen["endpoint"] & envoy_seen["locality"]) is listed
    for node in nodes[1:]:  # per locality only, the utilizations in the locality's fields
        assert seen[node]["endpoint"] == set()
        assert seen[node]["locality"] == ({LISTED} if listed else set())
        assert "application_utilization" in seen[node]["locality_fields"]
