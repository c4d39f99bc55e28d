"""The baseline server's request handling and the xdscp static file of the benchmark."""

from __future__ import annotations

import pytest

from bench.fanout.baseline import Action, classify
from bench.fanout.resources import CLUSTER_TYPE, CLUSTERS, ENDPOINT_TYPE, endpoints_of
from bench.fanout.servers import count_in_sync, static_yaml
from xdscp.sources.static import load_services


@pytest.mark.parametrize(
    ("sent", "request_", "expected", "sent_after"),
    [
        ({}, (CLUSTER_TYPE, "", False), Action.SEND_CLUSTERS, {CLUSTER_TYPE: ""}),
        (
            {CLUSTER_TYPE: "c1"},
            (ENDPOINT_TYPE, "", False),
            Action.SUBSCRIBE_ENDPOINTS,
            {CLUSTER_TYPE: "c1", ENDPOINT_TYPE: ""},
        ),
        ({CLUSTER_TYPE: "c1"}, (CLUSTER_TYPE, "c1", False), Action.ACK, {CLUSTER_TYPE: "c1"}),
        ({ENDPOINT_TYPE: "e2"}, (ENDPOINT_TYPE, "e2", True), Action.NACK, {ENDPOINT_TYPE: "e2"}),
        ({ENDPOINT_TYPE: "e2"}, (ENDPOINT_TYPE, "e1", False), Action.IGNORE, {ENDPOINT_TYPE: "e2"}),
        ({ENDPOINT_TYPE: "e2"}, (ENDPOINT_TYPE, "", False), Action.IGNORE, {ENDPOINT_TYPE: "e2"}),
        ({}, ("type.googleapis.com/other", "", False), Action.IGNORE, {}),
    ],
    ids=["first-cds", "first-eds", "ack", "nack", "stale-nonce", "resubscribe", "unknown-type"],
)
def test_classify(
    sent: dict[str, str],
    request_: tuple[str, str, bool],
    expected: Action,
    sent_after: dict[str, str],
) -> None:
    """Only the latest nonce is an ACK/NACK; each type is answered once per stream."""
    assert classify(*request_, sent) is expected
    assert sent == sent_after


@pytest.mark.parametrize("change", [0, 1, 7])
def test_static_yaml_lists_every_endpoint(change: int) -> None:
    """xdscp's own static loader reads the 50 services with exactly that change's endpoints."""
    services = load_services(static_yaml(change))
    assert sorted(services) == [f"svc-{i:02d}" for i in range(CLUSTERS)]
    for index in range(CLUSTERS):
        got = [(e.address, e.port) for e in services[f"svc-{index:02d}"].endpoints]
        assert sorted(got) == sorted(endpoints_of(index, change))


def test_count_in_sync_reads_xdscp_node_status() -> None:
    """Streams whose last sent CLA version is ACKed count as in sync; others do not."""
    streams = [
        {"types": {"ClusterLoadAssignment": {"in_sync": True}, "Cluster": {"in_sync": True}}},
        {"types": {"ClusterLoadAssignment": {"in_sync": False}}},
        {"types": {"Cluster": {"in_sync": True}}},
        {},
    ]
    assert count_in_sync(streams, "ClusterLoadAssignment") == {"streams": 4, "in_sync": 1}
