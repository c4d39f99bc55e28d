"""What gRPC's outlier detection (A50) does with `max_ejection_percent` 10 and 3 endpoints,
where Envoy ejects none (tests/integration/envoy/test_ejection_envoy.py): grpcio and grpc-go
eject while fewer than max_ejection_percent % are ejected, so one failing endpoint of 3 is
ejected anyway. Figures are printed (`-s`)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.plane import Plane
from xdscp.demo.backend import Backend

pytestmark = pytest.mark.grpc
BATCH = 60  # 20 calls per endpoint: over each detector's request_volume within an interval
DEADLINE_S = 60.0  # ejection happens at the next 1 s interval with enough calls
OUTLIER = {
    "consecutive_5xx": 0,
    "interval": "1s",
    "base_ejection_time": "5m",
    "failure_percentage": {"threshold": 50, "minimum_hosts": 3, "request_volume": 10},
}  # max_ejection_percent left at its default, 10; no always_eject_one_host


async def test_grpcio_ejects_one_of_three_at_ten_percent(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio: see `_prove`."""
    await _prove(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_ejects_one_of_three_at_ten_percent(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go: see `_prove`."""
    await _prove(plane, grpc_backends, grpc_client, "go")


async def _prove(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    """One endpoint of 3 answers UNAVAILABLE: batches of calls until a batch meets no error
    (the client ejected it at an interval), then a batch in which it receives nothing."""
    backends = grpc_backends[:3]
    policy: dict[str, Any] = {"lb": "round_robin", "outlier_detection": OUTLIER}
    plane.source.set({"web": grpc_service(backends, (1, 1, 1), **policy)})
    client = await grpc_client(kind)
    await in_sync(plane, client.node_id)
    bad = backends[0]
    bad.faults.fail()
    batches: list[int] = []
    deadline = time.monotonic() + DEADLINE_S
    while not batches or batches[-1]:
        assert time.monotonic() < deadline, f"{kind} ejected nothing: errors {batches}"
        batches.append(len((await client.call(n=BATCH))["errors"]))
    failed = bad.faults.failed
    after = await client.call(n=BATCH)
    print(
        f"\n{kind}, 3 endpoints, max_ejection_percent 10: errors per batch of {BATCH} until"
        f" ejected {batches}; then {bad.faults.failed - failed} of {BATCH} reached the"
        f" failing endpoint, {len(after['errors'])} errors"
    )
    assert batches[0] > 0  # it failed before it was ejected
    assert bad.faults.failed == failed
    assert after["errors"] == []
