"""Proxyless gRPC clients (grpcio and grpc-go) with outlier detection and retries from xdscp:
they ACK the resources (no NACK), and with one failing backend their retries hide its errors.
Every proof prints its figures (`-s`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.plane import Plane
from xdscp.demo.backend import Backend

pytestmark = pytest.mark.grpc
N = 60
# Failure-percentage ejection as gRPC implements it (A50); the 30 s interval keeps ejection
# out of the measured calls, so the two error counts compare retries alone.
OUTLIER = {
    "consecutive_5xx": 0,
    "interval": "30s",
    "base_ejection_time": "5m",
    "max_ejection_percent": 50,
    "failure_percentage": {"threshold": 50, "minimum_hosts": 3, "request_volume": 10},
}
RETRIES = {"retry_on": ["unavailable", "5xx"], "num_retries": 2}


async def test_grpcio_acks_retries_and_outlier_detection_and_hides_a_failing_backend(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio: see `_prove`."""
    await _prove(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_acks_retries_and_outlier_detection_and_hides_a_failing_backend(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go: see `_prove`."""
    await _prove(plane, grpc_backends, grpc_client, "go")


async def _prove(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    """Round robin over 3 backends, one answering UNAVAILABLE: 60 RPCs see about a third
    fail with outlier detection alone; once retries (unavailable, 2) are added, the client
    ACKs the new route and none (or hardly any) fail. Notes name what gRPC ignores."""
    backends = grpc_backends[:3]
    policy: dict[str, Any] = {"lb": "round_robin", "outlier_detection": OUTLIER}
    plane.source.set({"web": grpc_service(backends, (1, 1, 1), **policy)})
    client = await grpc_client(kind)
    before = await in_sync(plane, client.node_id)
    backends[0].faults.fail()
    without = await client.call(n=N)
    plane.source.set({"web": grpc_service(backends, (1, 1, 1), **policy, retries=RETRIES)})
    entry = await in_sync(plane, client.node_id, since=before)
    failed_before = backends[0].faults.failed
    with_retries = await client.call(n=N)
    retried = backends[0].faults.failed - failed_before
    print(
        f"\n{kind}: {N} RPCs, 1 of 3 backends UNAVAILABLE: {len(without['errors'])} errors "
        f"without retries, {len(with_retries['errors'])} with 2 retries ({retried} attempts "
        f"failed and were retried); no NACK; policy_notes {entry.get('policy_notes')}"
    )
    assert len(without["errors"]) >= N // 6
    assert len(with_retries["errors"]) <= len(without["errors"]) // 4
    assert retried >= N // 6
    notes = " ".join(entry.get("policy_notes", {}).get("web", []))
    assert "5xx ignored" in notes
