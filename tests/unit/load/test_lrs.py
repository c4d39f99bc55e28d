"""One LRS stream: the first request starts the reports, the others are reports."""

from __future__ import annotations

from envoy.service.load_stats.v3 import lrs_pb2

from xdscp.load.lrs import MIN_INTERVAL_S, SEND_ALL, LrsStream


def _stream(interval_s: float = 5.0) -> LrsStream:
    return LrsStream(interval_s, lambda: ["web", "api"], lambda cluster, locality: None)


def test_a_client_that_takes_every_cluster_is_asked_for_all() -> None:
    first = lrs_pb2.LoadStatsRequest()
    first.node.id = "envoy-a"
    first.node.client_features.append(SEND_ALL)
    response, reports = _stream().on_request(first)
    assert response is not None
    assert (response.send_all_clusters, list(response.clusters)) == (True, [])
    assert response.report_endpoint_granularity
    assert response.load_reporting_interval.ToMilliseconds() == 5000
    assert reports == []


def test_other_clients_are_given_the_names_and_later_requests_are_only_reports() -> None:
    stream = _stream(interval_s=0.001)
    first = lrs_pb2.LoadStatsRequest()
    first.node.id = "grpc-b"
    response, _ = stream.on_request(first)
    assert response is not None
    assert (response.send_all_clusters, list(response.clusters)) == (False, ["api", "web"])
    assert response.load_reporting_interval.ToMilliseconds() == MIN_INTERVAL_S * 1000
    report = lrs_pb2.LoadStatsRequest()
    report.cluster_stats.add(cluster_name="web").load_report_interval.FromSeconds(5)
    response, reports = stream.on_request(report)
    assert response is None
    assert [(r.node, r.interval_s, r.loads) for r in reports] == [("grpc-b", 5.0, ())]
    assert stream.node == "grpc-b"
