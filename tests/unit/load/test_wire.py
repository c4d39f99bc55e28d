"""LRS requests decoded: per endpoint (Envoy) or per own locality (gRPC), A58's utilization."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import load_report_pb2
from envoy.service.load_stats.v3 import lrs_pb2
from hypothesis import given
from hypothesis import strategies as st

from xdscp.load import EndpointLoad, LoadReport
from xdscp.load.wire import MAX_LOADS, decode_report


def _own(cluster: str, locality: Any) -> str | None:
    """gRPC's localities of one endpoint each end their sub_zone with `/KEY`."""
    _, slash, key = str(locality.sub_zone).rpartition("/")
    return key if slash and cluster == "web" else None


def _metric(name: str, total: float, n: int) -> load_report_pb2.EndpointLoadMetricStats:
    return load_report_pb2.EndpointLoadMetricStats(
        metric_name=name, total_metric_value=total, num_requests_finished_with_metric=n
    )


def test_envoys_endpoint_stats_become_one_load_each() -> None:
    endpoint = load_report_pb2.UpstreamEndpointStats(
        total_successful_requests=90, total_error_requests=10,
        load_metric_stats=[_metric("cpu_utilization", 9.0, 100),
                           _metric("application_utilization", 30.0, 100)],
    )  # fmt: skip
    endpoint.address.socket_address.address = "::1"
    endpoint.address.socket_address.port_value = 8080
    stats = load_report_pb2.ClusterStats(cluster_name="web")
    stats.load_report_interval.FromMilliseconds(2500)
    stats.upstream_locality_stats.add(upstream_endpoint_stats=[endpoint])
    request = lrs_pb2.LoadStatsRequest(cluster_stats=[stats])
    request.node.id = "envoy-a"
    assert decode_report(request, _own) == [
        LoadReport("envoy-a", 2.5, (EndpointLoad("web", "[::1]:8080", 90, 10, 30.0, 100),))
    ]


def test_grpcs_own_localities_stand_for_their_endpoint_with_cpu_when_no_application() -> None:
    own = load_report_pb2.UpstreamLocalityStats(
        locality=base_pb2.Locality(zone="z1", sub_zone="/10.0.0.1:80"),
        total_successful_requests=40,
    )
    own.cpu_utilization.total_metric_value = 12.0
    own.cpu_utilization.num_requests_finished_with_metric = 40
    shared = load_report_pb2.UpstreamLocalityStats(
        locality=base_pb2.Locality(zone="z1"), total_successful_requests=7
    )
    stats = load_report_pb2.ClusterStats(cluster_name="web", upstream_locality_stats=[own, shared])
    stats.load_report_interval.FromSeconds(10)
    request = lrs_pb2.LoadStatsRequest(cluster_stats=[stats])
    request.node.id = "grpc-b"
    assert decode_report(request, _own) == [
        LoadReport("grpc-b", 10.0, (EndpointLoad("web", "10.0.0.1:80", 40, 0, 12.0, 40),))
    ]


@pytest.mark.parametrize("per_locality", [0, MAX_LOADS // 3, MAX_LOADS // 2, MAX_LOADS])
def test_a_huge_report_is_cut_at_the_limit(per_locality: int) -> None:
    """Sizes at the limit: under, at, over it (3 localities of `per_locality` endpoints)."""
    stats = load_report_pb2.ClusterStats(cluster_name="web")
    for _ in range(3):
        locality = stats.upstream_locality_stats.add()
        for _ in range(per_locality):
            locality.upstream_endpoint_stats.add(total_successful_requests=1)
    (report,) = decode_report(lrs_pb2.LoadStatsRequest(cluster_stats=[stats]), _own)
    assert len(report.loads) == min(MAX_LOADS, 3 * per_locality)


_counts = st.integers(0, 2**64 - 1)
_values = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def _requests(draw: st.DrawFn) -> lrs_pb2.LoadStatsRequest:
    """LoadStatsRequests of any shape a client could send: names, addresses and ports of
    any value, counts up to 2^64-1, metric values NaN and infinite included."""
    request = lrs_pb2.LoadStatsRequest()
    for _ in range(draw(st.integers(0, 3))):
        stats = request.cluster_stats.add(cluster_name=draw(st.text(max_size=10)))
        stats.load_report_interval.seconds = draw(st.integers(-(2**40), 2**40))
        for _ in range(draw(st.integers(0, 3))):
            locality = stats.upstream_locality_stats.add(
                total_successful_requests=draw(_counts), total_error_requests=draw(_counts)
            )
            locality.locality.sub_zone = draw(st.text(max_size=10))
            locality.application_utilization.total_metric_value = draw(_values)
            locality.application_utilization.num_requests_finished_with_metric = draw(_counts)
            for _ in range(draw(st.integers(0, 3))):
                endpoint = locality.upstream_endpoint_stats.add(
                    total_successful_requests=draw(_counts), total_error_requests=draw(_counts)
                )
                endpoint.address.socket_address.address = draw(st.text(max_size=10))
                endpoint.address.socket_address.port_value = draw(st.integers(0, 2**32 - 1))
                endpoint.load_metric_stats.add(
                    metric_name=draw(st.sampled_from(["application_utilization", "x"])),
                    total_metric_value=draw(_values),
                    num_requests_finished_with_metric=draw(_counts),
                )
    return request


@given(_requests())
def test_any_request_decodes_without_raising_one_report_per_cluster(request: Any) -> None:
    reports = decode_report(request, _own, "node")
    assert len(reports) == len(request.cluster_stats)
    for report, stats in zip(reports, request.cluster_stats, strict=True):
        endpoints = sum(len(loc.upstream_endpoint_stats) for loc in stats.upstream_locality_stats)
        assert len(report.loads) <= max(endpoints, len(stats.upstream_locality_stats))
        assert all(load.cluster == stats.cluster_name for load in report.loads)
