"""Issue 12's reproduction over one real ADS stream against a real xdscp (gRPC, loopback).

A gRPC Go client subscribes RouteConfiguration `[svc]` and ACKs it; a policy change is
pushed and not ACKed; the client sends `[]` with the old nonce (an unsubscribe crossing the
push); the policy changes again; the client sends `[svc]` with a nonce it never got. The
unsubscribe must be obeyed (nothing pushed) and the re-subscription answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from structlog.testing import capture_logs

from xdscp.cache import TypeUrl
from xdscp.model import BalancingPolicy, Endpoint, HashInput, HashOn, LbPolicy, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.server import StreamEvent, StreamEventKind
from xdscp.sources.memory import MemorySource

BOUND = 10.0  # seconds any single expected event may take on a loaded 2-core machine


def policy(header: str) -> dict[str, Service]:
    """One service whose route hashes on `header` (a change of it changes the route)."""
    hashing = BalancingPolicy(lb=LbPolicy.RING_HASH, hash_on=(HashOn(HashInput.HEADER, header),))
    return {"svc": Service("svc", (Endpoint("10.0.0.1", 80),), hashing)}


class Recorder:
    """Every push and answer xdscp's streams report, and a wake-up for each."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, event: StreamEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, condition: Callable[[], object]) -> None:
        """Wait (bounded) until `condition()` holds, re-checked at each event."""
        async with asyncio.timeout(BOUND):
            while True:
                self.changed.clear()
                if condition():
                    return
                await self.changed.wait()


@pytest.fixture
async def plane() -> AsyncIterator[tuple[ControlPlane, MemorySource, Recorder]]:
    """xdscp on free loopback ports; observers record every push and answer."""
    source = MemorySource(policy("x-one"))
    recorder = Recorder()
    control = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)),
        sources=[source],
        observers=[recorder],
    )
    await control.start()
    try:
        yield control, source, recorder
    finally:
        await control.stop()


def rds(names: list[str], nonce: str = "", version: str = "") -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(
        type_url=TypeUrl.ROUTE, resource_names=names, response_nonce=nonce, version_info=version
    )


async def test_unsubscribe_crossing_a_push_then_resubscribe_is_answered(
    plane: tuple[ControlPlane, MemorySource, Recorder],
) -> None:
    """The issue's sequence: `[]` with a stale nonce stops pushes of svc; `[svc]` with a
    nonce never sent is answered with the current route (not lost for good)."""
    control, source, recorder = plane
    events = recorder.events
    node = base_pb2.Node(id="go-client", user_agent_name="gRPC Go", user_agent_version="1.7")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control.xds_port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        first = rds(["svc"])
        first.node.CopyFrom(node)
        await call.write(first)
        async with asyncio.timeout(BOUND):
            one = await call.read()
        assert [a.type_url for a in one.resources] == [str(TypeUrl.ROUTE)]
        await call.write(rds(["svc"], one.nonce, one.version_info))
        await recorder.until(lambda: [e.kind for e in events] == ["push", "ack"])
        source.set(policy("x-two"))
        async with asyncio.timeout(BOUND):
            two = await call.read()  # pushed, never ACKed
        assert int(two.nonce) > int(one.nonce)
        await call.write(rds([], one.nonce, one.version_info))  # crosses the push
        await recorder.until(
            lambda: events[-1].kind is StreamEventKind.STALE
        )  # the unsubscribe handled
        (record,) = control.status.streams.values()
        assert record.types[TypeUrl.ROUTE].names == frozenset()
        cache, before = control.service.cache, record.snapshot
        assert before is cache.get(record.group)  # the stream holds the x-two snapshot
        stop = cache.watch(record.group, lambda _: recorder.changed.set())
        source.set(policy("x-three"))
        await recorder.until(lambda: cache.get(record.group) is not before)
        stop()  # the stream has the change queued before the request below: handled first
        await call.write(rds(["svc"], str(int(two.nonce) + 1), two.version_info))
        async with asyncio.timeout(BOUND):
            answer = await call.read()
        assert answer.type_url == TypeUrl.ROUTE
        assert len(answer.resources) == 1
        assert answer.version_info not in {one.version_info, two.version_info}
        assert int(answer.nonce) > int(two.nonce)
        assert record.snapshot is cache.get(record.group)  # the x-three route
        pushes = [e.nonce for e in events if e.kind is StreamEventKind.PUSH]
        assert pushes == [one.nonce, two.nonce, answer.nonce], "no push for an unwatched route"
        await call.write(rds(["svc"], answer.nonce, answer.version_info))
        await recorder.until(lambda: events[-1].kind is StreamEventKind.ACK)  # the answer ACKed
        call.cancel()


async def test_unserved_type_is_answered_empty_and_no_type_url_ends_the_stream(
    plane: tuple[ControlPlane, MemorySource, Recorder],
) -> None:
    """Over real ADS: SDS (not served) gets an empty response and the same stream goes on
    serving Clusters; a request with no type URL ends the stream with INVALID_ARGUMENT."""
    control = plane[0]
    secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control.xds_port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources()
        first = discovery_pb2.DiscoveryRequest(type_url=secret, resource_names=["cert"])
        first.node.CopyFrom(base_pb2.Node(id="envoy-sds", user_agent_name="envoy"))
        await call.write(first)
        async with asyncio.timeout(BOUND):
            empty = await call.read()
        assert (empty.type_url, len(empty.resources)) == (secret, 0)
        await call.write(discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER))
        async with asyncio.timeout(BOUND):
            clusters = await call.read()
        assert [a.type_url for a in clusters.resources] == [str(TypeUrl.CLUSTER)]
        await call.write(discovery_pb2.DiscoveryRequest(resource_names=["x"]))
        async with asyncio.timeout(BOUND):
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await call.read()
        assert ended.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "type_url" in (ended.value.details() or "")


NACK_FLOOD = 200


async def test_a_nack_repeated_is_logged_and_counted_once_then_counted_as_duplicates(
    plane: tuple[ControlPlane, MemorySource, Recorder],
) -> None:
    """Over real ADS: the same NACK sent 200 times is one `nack_received` log line and one
    `xdscp_nacks_total`; the 199 repeats are `xdscp_nacks_duplicate_total`."""
    control, _, recorder = plane
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control.xds_port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        first = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER)
        first.node.CopyFrom(base_pb2.Node(id="nack-flood", user_agent_name="envoy"))
        with capture_logs() as logs:
            await call.write(first)
            async with asyncio.timeout(BOUND):
                response = await call.read()
            nack = discovery_pb2.DiscoveryRequest(
                type_url=TypeUrl.CLUSTER, response_nonce=response.nonce
            )
            nack.error_detail.message = "maglev table size not prime"
            for _ in range(NACK_FLOOD):
                await call.write(nack)
            duplicates = StreamEventKind.DUPLICATE_NACK
            await recorder.until(
                lambda: sum(e.kind is duplicates for e in recorder.events) == NACK_FLOOD - 1
            )
        call.cancel()
    sample = control.metrics_registry.get_sample_value
    assert sample("xdscp_nacks_total", {"type": "Cluster"}) == 1
    assert sample("xdscp_nacks_duplicate_total", {"type": "Cluster"}) == NACK_FLOOD - 1
    assert [e["event"] for e in logs].count("nack_received") == 1
