"""grpcio 1.85 as a proxyless xDS client of xdscp (`xds:///web`, bootstrap from
`xdscp.clients.grpc_bootstrap`): what it does with the gRPC translation matches the
reference balancer in client="grpc" mode, RPC for RPC where it can be predicted."""

from __future__ import annotations

import grpc
import pytest
import xxhash
from google.protobuf import wrappers_pb2

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.plane import Plane
from tests.harness.stats import EQUAL, SPLIT_CASES, WEIGHTED, assert_shares
from tests.integration.grpc.expect import (
    REFERENCE_PICKS,
    grpc_reference,
    predicted_backend,
    predicted_shares,
    route_hash_policies,
)
from xdscp.demo.backend import WHO_METHOD, Backend
from xdscp.model import HashOn

pytestmark = pytest.mark.grpc
N = 1000


@pytest.mark.parametrize(("lb", "wrong"), [c for c in SPLIT_CASES if c[0] != "least_request"])
async def test_split_of_1000_rpcs_matches_the_reference(
    plane: Plane,
    grpc_backends: list[Backend],
    grpc_client: ClientStarter,
    lb: str,
    wrong: dict[str, float],
) -> None:
    """Backends weighted 1:2:7, 1000 sequential RPCs: each backend's count is within 5 sigma
    of the reference's gRPC-mode share (binomial, with the reference's own sampling error;
    see tests/harness/stats.py), and the band excludes the plausible wrong split
    (weights ignored, or honoured where they should not be). Round robin rotates exactly."""
    service = grpc_service(grpc_backends, (1, 2, 7), lb=lb)
    plane.source.set({"web": service})
    client = await grpc_client()
    await in_sync(plane, client.node_id)
    observed = await client.counts(N)
    predicted = predicted_shares(service, grpc_backends)
    assert_shares(observed, predicted, N, reference_picks=REFERENCE_PICKS, alternative=wrong)
    if lb == "round_robin":
        assert all(abs(observed[k] - N / 3) <= 1 for k in EQUAL), observed


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
async def test_header_hash_sticks_where_the_reference_predicts(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter, lb: str
) -> None:
    """Hashing on header x-user (Maglev falls back to gRPC's ring hash): 100 users x 10 RPCs
    each land exactly on the backend the reference picks for XXH64(value, seed 0) on the
    4096-entry ring, and the users cover all three backends."""
    service = grpc_service(
        grpc_backends, (1, 2, 7), lb=lb, hash_on=(HashOn.parse("header:x-user"),)
    )
    plane.source.set({"web": service})
    client = await grpc_client()
    await in_sync(plane, client.node_id)
    users = [f"user-{i}" for i in range(100)]
    result = await client.call(header="x-user", keys=[u for u in users for _ in range(10)])
    assert not result["errors"], result["errors"][:3]
    predict = predicted_backend(service, grpc_backends, "x-user")
    want = [predict(u) for u in users for _ in range(10)]
    assert result["picks"] == want
    assert set(want) == {"b0", "b1", "b2"}
    # What the match above shows gRPC hashes: the header value's XXH64 with seed 0.
    reference, policies = grpc_reference(service), route_hash_policies(service)
    key = reference.request_hash(headers={"x-user": "user-7"}, route_policies=policies)
    assert key == xxhash.xxh64_intdigest(b"user-7")


async def test_policies_grpc_lacks_are_accepted_and_serve(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """One client while the service switches to Maglev, random and least request (policies
    grpcio NACKs when sent as Envoy gets them): each change is ACKed with no NACK on record,
    and 600 RPCs split as the reference predicts for what grpcio falls back to (ring hash with
    a random hash: 1:2:7; ring hash on equal weights; round robin: equal). Source-IP hash
    hashes the channel id: all 600 RPCs of the channel go to one backend."""
    plane.source.set({"web": grpc_service(grpc_backends, (1, 2, 7), lb="round_robin")})
    client = await grpc_client()
    status = await in_sync(plane, client.node_id)
    for lb, wrong in (("maglev", EQUAL), ("random", WEIGHTED), ("least_request", WEIGHTED)):
        service = grpc_service(grpc_backends, (1, 2, 7), lb=lb)
        plane.source.set({"web": service})
        status = await in_sync(plane, client.node_id, since=status)
        await client.counts(20)  # the channel swaps its picker just after the ACK
        observed = await client.counts(600)
        predicted = predicted_shares(service, grpc_backends)
        assert_shares(observed, predicted, 600, reference_picks=REFERENCE_PICKS, alternative=wrong)
    plane.source.set({"web": grpc_service(grpc_backends, (1, 2, 7), lb="source_ip_hash")})
    await in_sync(plane, client.node_id, since=status)
    await client.counts(20)
    assert len(await client.counts(600)) == 1


async def _direct(backend: Backend) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.grpc_port}") as channel:
        who = channel.unary_unary(
            WHO_METHOD, response_deserializer=wrappers_pb2.StringValue.FromString
        )
        reply = await who(wrappers_pb2.StringValue().SerializeToString(), timeout=5)
        return str(reply.value)


async def test_removed_endpoint_gets_no_rpc_once_the_client_acks(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """Round robin over b0..b3 reaches all four; b3 is removed (still running and answering
    directly): from the moment xdscp records the client's ACK of the new load assignment,
    none of 400 RPCs (4 in flight at a time) reaches b3."""
    plane.source.set({"web": grpc_service(grpc_backends, (1, 1, 1, 1), lb="round_robin")})
    client = await grpc_client()
    status = await in_sync(plane, client.node_id)
    assert set(await client.counts(40)) == {"b0", "b1", "b2", "b3"}
    plane.source.set({"web": grpc_service(grpc_backends, (1, 1, 1), lb="round_robin")})
    await in_sync(plane, client.node_id, changed="ClusterLoadAssignment", since=status)
    observed = await client.counts(400, concurrency=4)
    assert set(observed) == {"b0", "b1", "b2"}, observed
    assert await _direct(grpc_backends[3]) == "b3"
