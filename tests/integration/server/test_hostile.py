"""Hostile ADS clients against a real `xdscp serve` while a real Envoy gets a change a second.

The abusers and the rig are `bench/hostile.py` (run it alone for the same figures); the
figures are printed (`pytest -s`) for BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from bench.hostile import ADS, run
from xdscp.cache import TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources.memory import MemorySource

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SLOW_CLIENTS = 10
CHURN = 2000
RSS_BOUND_MIB = 100  # peak over the baseline, everything at once (measured: ~50)


async def test_serve_stays_up_bounded_and_propagating_under_hostile_clients(
    tmp_path: Path,
) -> None:
    """While never-reading clients, NACK floods, a 100k-name subscription, garbage requests,
    random bytes and 2000 short streams hit serve at once: serve stays up and exits cleanly,
    Envoy receives every change (no slower than a second beyond the baseline at the median),
    serve's peak RSS stays within a fixed bound over its baseline although the never-reading
    clients sent hundreds of MiB, and every client sees the status the protocol promises:
    RESOURCE_EXHAUSTED for the never-reading and the over-8-MiB ones (each logged once and
    counted), INVALID_ARGUMENT for undecodable bytes and a request without a type URL,
    answers for the rest (unknown type URLs and garbage nonces do not end a stream)."""
    figures = await run(tmp_path, slow=SLOW_CLIENTS, churn_count=CHURN, write_timeout_s=5.0)
    print("\nhostile figures:", json.dumps(figures, indent=2))
    assert figures["alive"]
    assert figures["serve_exit"] == 0
    assert figures["changes_lost"] == 0
    before, during = figures["propagation_ms"]["before"], figures["propagation_ms"]["during"]
    assert during["n"] >= 5
    assert during["p50"] <= before["p50"] + 1000
    assert during["max"] <= 5000
    rss = figures["rss_mib"]
    seen = figures["statuses"]
    assert seen["slow_sent_mib"] > 2 * RSS_BOUND_MIB  # what a buffering server would hold
    assert rss["peak"] - rss["before"] < RSS_BOUND_MIB
    assert seen["slow"] == {"RESOURCE_EXHAUSTED": SLOW_CLIENTS}
    assert seen["nack_flood"] == "open"
    assert seen["big_subscription"]["100k_names"] == "answered with 201 of 100201"
    assert seen["big_subscription"]["over_8MiB"] == "RESOURCE_EXHAUSTED"
    assert seen["garbage_then_valid"] == "answered"
    assert seen["no_type_url"] == "INVALID_ARGUMENT"
    undecodable = seen["random_bytes"]["undecodable"]
    assert set(undecodable) == {"INVALID_ARGUMENT"}
    assert seen["churn_answered"] == CHURN
    assert figures["streams_after"] == 1  # only Envoy's: every abuser's stream is gone
    errors = figures["stream_errors"]
    assert errors['reason="slow_client"}'] == SLOW_CLIENTS
    assert errors['reason="undecodable_request"}'] == undecodable["INVALID_ARGUMENT"]
    assert errors['reason="invalid_request"}'] == 1
    aborted = SLOW_CLIENTS + undecodable["INVALID_ARGUMENT"] + 1
    assert figures["stream_aborted_logs"] == aborted


async def _plane(write_timeout_s: float = 30.0) -> ControlPlane:
    services = {
        f"s{i:03d}": Service(f"s{i:03d}", (Endpoint(f"10.1.0.{i % 250 + 1}", 80 + i),))
        for i in range(200)
    }
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0, write_timeout_s=write_timeout_s)),
        sources=[MemorySource(services)],
    )
    await plane.start()
    return plane


def _errors(plane: ControlPlane, reason: str) -> float:
    return (
        plane.metrics_registry.get_sample_value("xdscp_stream_errors_total", {"reason": reason})
        or 0
    )


async def test_an_undecodable_request_ends_the_stream_with_invalid_argument() -> None:
    """Bytes that are no DiscoveryRequest end the stream with INVALID_ARGUMENT (not OK),
    counted once; a valid request on another stream is still answered."""
    plane = await _plane()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}") as channel:
            call = channel.stream_stream(ADS)()
            await call.write(b"\x0a\xff\xff\xff\x0f")  # field 1, length past the end
            async with asyncio.timeout(10):
                assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "undecodable request" in (await call.details() or "")
            assert _errors(plane, "undecodable_request") == 1
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            good = stub.StreamAggregatedResources()
            node = base_pb2.Node(id="good", user_agent_name="envoy")
            await good.write(discovery_pb2.DiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER))
            async with asyncio.timeout(10):
                assert len((await good.read()).resources) == 200
            good.cancel()
    finally:
        await plane.stop()


async def test_a_client_that_never_reads_is_closed_after_the_write_timeout() -> None:
    """A client that sends requests but reads nothing: xdscp stops reading its requests
    once its writes block (the client's writes stall, a bounded amount sent), then ends the
    stream with RESOURCE_EXHAUSTED after the write timeout, counted once."""
    plane = await _plane(write_timeout_s=1.0)
    own = [("grpc.use_local_subchannel_pool", 1)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds_port}", options=own) as ch:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch).StreamAggregatedResources()
            node = base_pb2.Node(id="slow", user_agent_name="envoy")
            names = [f"s{i:03d}" for i in range(200)]
            sent = 0

            async def pump() -> None:
                nonlocal sent
                for i in range(100_000):  # far more than any window: the writes must stall
                    request = discovery_pb2.DiscoveryRequest(
                        node=node, type_url=TypeUrl.ENDPOINT, resource_names=names[i % 2 :]
                    )
                    await call.write(request)
                    sent += 1

            writer = asyncio.create_task(pump())
            async with asyncio.timeout(60):
                # the counter is the only sign of the close before the client drains
                while _errors(plane, "slow_client") == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            stalled_at = sent
            assert not writer.done()  # still blocked: xdscp read no more of its requests
            assert stalled_at < 100_000
            async with asyncio.timeout(30):  # the status follows the responses already sent
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for _ in call:
                        pass
                assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "write timeout" in (await call.details() or "")
            assert _errors(plane, "slow_client") == 1
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                async with asyncio.timeout(10):
                    await writer
    finally:
        await plane.stop()
