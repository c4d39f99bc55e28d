"""LRS's `LoadStatsRequest` decoded into `LoadReport`s: protobuf stays here.

A client reports per cluster and locality, and per endpoint where it offers it (Envoy, when
the server asks for endpoint granularity). Per endpoint, the endpoint is its address; per
locality only (gRPC clients), the locality stands for one endpoint when xdscp gave it one of
its own (`endpoint_of`, from the translation's locality names), and is skipped otherwise.
Utilization is gRFC A58's: the application utilization where the backends report one, the
CPU utilization otherwise; per endpoint it is the named metric of that name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xdscp.load.reports import EndpointLoad, LoadReport
from xdscp.model.address import format_host_port

APPLICATION = "application_utilization"
CPU = "cpu_utilization"
MAX_LOADS = 10_000  # per request: a larger report is cut here (counted by the caller)

EndpointOf = Callable[[str, Any], str | None]  # (cluster, Locality proto) -> endpoint key


def decode_report(
    request: Any, endpoint_of: EndpointOf, node: str | None = None
) -> list[LoadReport]:
    """One `LoadReport` per cluster of an LRS `LoadStatsRequest`, from `node` (by default
    the request's own: clients name it in the first request of a stream only)."""
    node = str(request.node.id) if node is None else node
    out = []
    for stats in request.cluster_stats:
        interval = stats.load_report_interval
        loads = _cluster_loads(stats, endpoint_of)
        out.append(LoadReport(node, interval.seconds + interval.nanos / 1e9, tuple(loads)))
    return out


def _cluster_loads(stats: Any, endpoint_of: EndpointOf) -> list[EndpointLoad]:
    loads: list[EndpointLoad] = []
    for locality in stats.upstream_locality_stats:
        if len(loads) >= MAX_LOADS:
            break
        if locality.upstream_endpoint_stats:
            loads += [_endpoint_load(stats.cluster_name, e) for e in
                      locality.upstream_endpoint_stats[: MAX_LOADS - len(loads)]]  # fmt: skip
            continue
        endpoint = endpoint_of(stats.cluster_name, locality.locality)
        if endpoint is not None:
            loads.append(_locality_load(stats.cluster_name, endpoint, locality))
    return loads


def _endpoint_load(cluster: str, stats: Any) -> EndpointLoad:
    socket = stats.address.socket_address
    named = {m.metric_name: m for m in stats.load_metric_stats}
    metric = _utilization(named.get(APPLICATION), named.get(CPU))
    return EndpointLoad(
        cluster,
        format_host_port(socket.address, socket.port_value),
        stats.total_successful_requests,
        stats.total_error_requests,
        *metric,
    )


def _locality_load(cluster: str, endpoint: str, stats: Any) -> EndpointLoad:
    application = stats.application_utilization if stats.HasField(APPLICATION) else None
    cpu = stats.cpu_utilization if stats.HasField(CPU) else None
    return EndpointLoad(
        cluster,
        endpoint,
        stats.total_successful_requests,
        stats.total_error_requests,
        *_utilization(application, cpu),
    )


def _utilization(application: Any, cpu: Any) -> tuple[float, int]:
    """(total, requests) of the application utilization if any was reported, else the CPU's."""
    for metric in (application, cpu):
        if metric is not None and metric.total_metric_value > 0:
            return float(metric.total_metric_value), int(metric.num_requests_finished_with_metric)
    return 0.0, 0
