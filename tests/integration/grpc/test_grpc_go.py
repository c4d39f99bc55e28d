"""grpc-go 1.85 (tests/interop/go/xdsclient, `google.golang.org/grpc/xds`) beside grpcio on the
same gRPC translation: each takes the first policy of the list it supports."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.plane import Plane
from tests.harness.stats import SIGMAS, assert_shares, sigma
from tests.integration.grpc.expect import REFERENCE_PICKS, predicted_backend, predicted_shares
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.model import HashOn, LbPolicy

# The grpc-go client is built (session-wide, once) before any fixture starts xDS or a client.
pytestmark = [pytest.mark.grpc, pytest.mark.go, pytest.mark.usefixtures("go_client_binary")]
EQUAL = {"b0": 1 / 3, "b1": 1 / 3, "b2": 1 / 3}
SLOW_S = 0.03
GO_LEAST_REQUEST = 'Creating child policy of type "least_request_experimental"'
PYTHON_ROUND_ROBIN = re.compile(
    r'"xds_wrr_locality_experimental":\s*\{\s*"childPolicy":\s*\[\s*\{\s*"round_robin"'
)
N = 600


@pytest.fixture
async def slow_backend() -> AsyncIterator[Backend]:
    """A gRPC backend named `slow` that answers after SLOW_S."""
    backend = Backend(BackendConfig("slow", http_port=-1, delay_s=SLOW_S))
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


async def test_least_request_grpc_go_balances_by_load_grpcio_rotates(
    plane: Plane, grpc_backends: list[Backend], slow_backend: Backend, grpc_client: ClientStarter
) -> None:
    """One least-request service, a grpcio and a grpc-go client at once (both ACK, no NACK),
    each making 600 RPCs with 6 in flight over b0, b1 and a backend 30 ms slower. grpcio skips
    least_request and rotates (round robin: exactly a third each, +-2, as the reference
    predicts); grpc-go takes least_request (two random choices, fewer outstanding wins) and
    sends the slow backend less than a load-blind policy would: more than 5 sigma below the
    reference's third (under 141 of 600; measured 12-14 %, ~1/9 when the slow one is always
    busier). That holds at any speed of the machine: however slow every backend gets, the
    slow one is slower by 30 ms and holds more RPCs; rotation (exactly 200) and random
    (200 +- 12) fail it. Each client's own log names the child policy its channel built under
    wrr_locality: round_robin, least_request."""
    backends = [*grpc_backends[:2], slow_backend]
    service = grpc_service(backends, (1, 1, 1), lb=LbPolicy.LEAST_REQUEST)
    plane.source.set({"web": service})
    python, go = await asyncio.gather(
        grpc_client("python", trace=True), grpc_client("go", trace=True)
    )
    for client in (python, go):
        await in_sync(plane, client.node_id)
    by_python, by_go = await asyncio.gather(python.counts(N, 6), go.counts(N, 6))
    print("grpcio", dict(by_python), "grpc-go", dict(by_go))
    assert GO_LEAST_REQUEST in go.log()
    assert PYTHON_ROUND_ROBIN.search(python.log()), python.log()[-2000:]
    assert "least_request" not in python.log()
    assert all(abs(by_python[name] - N / 3) <= 2 for name in ("b0", "b1", "slow")), by_python
    blind = predicted_shares(service, backends)  # the reference (grpcio's view) rotates too
    assert blind == pytest.approx({"b0": 1 / 3, "b1": 1 / 3, "slow": 1 / 3}, abs=0.01)
    assert sum(by_go.values()) == N
    p = blind["slow"]
    assert by_go["slow"] < N * p - SIGMAS * sigma(N, p, REFERENCE_PICKS), (by_go, by_python)


async def test_grpc_go_takes_every_policy_and_matches_the_reference(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """One grpc-go client while the service cycles through every xdscp policy on 1:2:7
    backends: each change is ACKed with no NACK, and 600 RPCs split as the reference's
    gRPC mode predicts (least request has no load here: its random pair gives equal shares;
    source-IP hash hashes the channel id: one backend takes every RPC)."""
    plane.source.set({"web": grpc_service(grpc_backends, (1, 1))})  # differs from the first
    client = await grpc_client("go")
    status = await in_sync(plane, client.node_id)
    for lb in LbPolicy:
        service = grpc_service(grpc_backends, (1, 2, 7), lb=lb)
        plane.source.set({"web": service})
        status = await in_sync(plane, client.node_id, since=status)
        await client.counts(20)  # the channel swaps its picker just after the ACK
        observed = await client.counts(600)
        print(lb, dict(observed))
        if lb is LbPolicy.SOURCE_IP_HASH:
            assert len(observed) == 1, observed
            continue
        predicted = (
            EQUAL if lb is LbPolicy.LEAST_REQUEST else predicted_shares(service, grpc_backends)
        )
        assert_shares(observed, predicted, 600, reference_picks=REFERENCE_PICKS)


async def test_grpc_go_header_hash_sticks_where_the_reference_predicts(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go hashes x-user with XXH64 on the same 4096-entry ring: 100 users x 5 RPCs land
    exactly where the reference predicts, as with grpcio."""
    service = grpc_service(
        grpc_backends, (1, 2, 7), lb=LbPolicy.RING_HASH, hash_on=(HashOn.parse("header:x-user"),)
    )
    plane.source.set({"web": service})
    client = await grpc_client("go")
    await in_sync(plane, client.node_id)
    users = [f"user-{i}" for i in range(100)]
    result = await client.call(header="x-user", keys=[u for u in users for _ in range(5)])
    assert not result["errors"], result["errors"][:3]
    predict = predicted_backend(service, grpc_backends, "x-user")
    assert result["picks"] == [predict(u) for u in users for _ in range(5)]
