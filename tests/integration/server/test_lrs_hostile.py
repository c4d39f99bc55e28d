"""Hostile LRS clients against the plane `xdscp serve` runs, over real gRPC on its xDS port.

A node that holds an ADS stream subscribed to `web` reports honestly; then reports for
unknown clusters and endpoints, absurd counts and intervals, reports from a node that
receives nothing, a flood of large reports and of streams: each is refused and counted by
reason, the honest report stays as it was, the book stays within its bound, every abusive
stream's entries go with it, and the server keeps answering xDS and LRS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.endpoint.v3 import load_report_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2

from xdscp.cache import TypeUrl
from xdscp.config.options import LoadReporting
from xdscp.load.lrs import METHOD, SEND_ALL, SERVICE
from xdscp.model import Endpoint, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for

ENDPOINTS = ("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
MAX_ENTRIES = 20
FLOOD_REQUESTS = 200
FLOOD_LOADS = 2000  # endpoint stats per flood request
FLOOD_STREAMS = 100
PEAK_RSS_BOUND_MIB = 100  # the whole abuse, client and server in this process


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    web = Service("web", tuple(Endpoint(k.split(":")[0], 80) for k in ENDPOINTS))
    api = Service("api", (Endpoint("10.0.1.1", 80),))
    load = LoadReporting(interval_s=1.0, stale_after_s=3600.0, max_entries=MAX_ENTRIES)
    options = ServeOptions(xds_port=0, admin_port=0, load=load)
    control = build_plane(
        ServerConfig(serve=options), sources=[MemorySource({"web": web, "api": api})]
    )
    await control.start()
    try:
        await wait_for(lambda: control.view.readiness()[0], 30)
        yield control
    finally:
        await control.stop()


def _stats(cluster: str, loads: list[tuple[str, int, int]], seconds: int = 1) -> Any:
    stats = load_report_pb2.ClusterStats(cluster_name=cluster)
    stats.load_report_interval.seconds = seconds
    locality = stats.upstream_locality_stats.add()
    for address, ok, errors in loads:
        host, _, port = address.rpartition(":")
        endpoint = locality.upstream_endpoint_stats.add(
            total_successful_requests=ok, total_error_requests=errors
        )
        endpoint.address.socket_address.address = host
        endpoint.address.socket_address.port_value = int(port)
    return stats


class Lrs:
    """One LRS stream: `start(node)` (the first request, answered), then `report(...)`."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream(
            f"/{SERVICE}/{METHOD}",
            request_serializer=lrs_pb2.LoadStatsRequest.SerializeToString,
            response_deserializer=lrs_pb2.LoadStatsResponse.FromString,
        )
        self.call = method()

    async def start(self, node: str) -> Any:
        first = lrs_pb2.LoadStatsRequest()
        first.node.id = node
        first.node.client_features.append(SEND_ALL)
        await self.call.write(first)
        return await self.call.read()

    async def report(self, *stats: Any) -> None:
        await self.call.write(lrs_pb2.LoadStatsRequest(cluster_stats=list(stats)))

    def close(self) -> None:
        self.call.cancel()


async def _subscribe(channel: grpc.aio.Channel, node: str) -> Any:
    """An ADS stream of `node` subscribed to Cluster `web`, once answered."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    request = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER, resource_names=["web"])
    request.node.id = node
    await call.write(request)
    await call.read()
    return call


def _refused(plane: ControlPlane) -> dict[str, float]:
    out = {}
    for metric in plane.metrics_registry.collect():
        if metric.name == "xdscp_load_reports_refused":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["reason"]] = sample.value
    return out


def _honest(plane: ControlPlane) -> dict[str, int]:
    return {
        key[2]: held.total
        for key, held in plane.load.book.held().items()
        if key[0].startswith("honest#")
    }


async def test_hostile_lrs_reports_are_refused_bounded_and_change_nothing_honest(
    plane: ControlPlane,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
        ads = await _subscribe(channel, "honest")
        honest = Lrs(channel)
        response = await honest.start("honest")
        assert response.send_all_clusters
        assert response.load_reporting_interval.seconds == 1
        await honest.report(_stats("web", [(ENDPOINTS[0], 10, 0), (ENDPOINTS[1], 30, 0)]))
        await wait_for(lambda: sum(_honest(plane).values()) == 40, 30)
        before = plane.load.book.held()

        peak_before = _peak_rss_mib()
        await _abuse(channel, plane)
        grown = _peak_rss_mib() - peak_before
        assert grown < PEAK_RSS_BOUND_MIB, grown
        assert plane.load.book.held() == before  # every abusive entry went with its stream
        assert _honest(plane) == {ENDPOINTS[0]: 10, ENDPOINTS[1]: 30}
        refused = _refused(plane)
        print(f"\nrefused by reason: {refused}; book: {len(plane.load.book)} entries;"
              f" peak RSS grew {grown:.1f} MiB (test and server, one process)")  # fmt: skip

        # Still serving: the honest stream's next report is taken, and a new ADS stream answered.
        await honest.report(_stats("web", [(ENDPOINTS[2], 5, 0)]))
        await wait_for(lambda: _honest(plane).get(ENDPOINTS[2]) == 5, 30)
        again = await _subscribe(channel, "late")
        again.cancel()
        honest.close()
        ads.cancel()
    await wait_for(lambda: len(plane.load.book) == 0, 30)


async def _abuse(channel: grpc.aio.Channel, plane: ControlPlane) -> None:
    """Every kind of hostile report, each on its own stream, closed afterwards."""
    before = _refused(plane)
    bad = Lrs(channel)
    await bad.start("honest")  # the same node id, a stream of its own
    await bad.report(
        _stats("api", [("10.0.1.1:80", 5, 0)]),  # a service it does not receive
        _stats("web", [("10.9.9.9:80", 5, 0)]),  # not an endpoint of web
        _stats("web", [(ENDPOINTS[0], 2**63 - 1, 2**63 - 1)]),  # absurd counts
        _stats("web", [(ENDPOINTS[0], 5, 0)], seconds=10**9),  # absurd interval
        _stats("no-such", [(ENDPOINTS[0], 5, 0)]),  # no such service
    )
    stranger = Lrs(channel)
    await stranger.start("stranger")  # receives nothing
    await stranger.report(_stats("web", [(ENDPOINTS[0], 5, 0)]))
    want = {"not_received": 2, "unknown_cluster": 1, "unknown_endpoint": 1, "implausible": 1,
            "interval": 1}  # fmt: skip
    await wait_for(lambda: _grew(before, _refused(plane)) == want, 30)

    flood = Lrs(channel)
    await flood.start("honest")
    loads = [(f"10.{i // 250}.{i % 250}.9:80", 1, 0) for i in range(FLOOD_LOADS)]
    for _ in range(FLOOD_REQUESTS):
        await flood.report(_stats("web", loads))
    many = [Lrs(channel) for _ in range(FLOOD_STREAMS)]
    await asyncio.gather(*(s.start("honest") for s in many))
    for stream in many:  # each a reporter of its own, with known endpoints: the book fills
        await stream.report(_stats("web", [(k, 1, 0) for k in ENDPOINTS]))
    flooded = FLOOD_REQUESTS * FLOOD_LOADS
    await wait_for(lambda: _refused(plane).get("unknown_endpoint", 0) >= 1 + flooded, 120)
    await wait_for(lambda: _refused(plane).get("full", 0) > 0, 60)
    assert len(plane.load.book) <= MAX_ENTRIES
    for stream in (bad, stranger, flood, *many):
        stream.close()
    await wait_for(lambda: len(plane.load.book) == 2, 60)  # the honest stream's two


def _grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
