"""Hostile ADS clients against a real `xdscp serve` while a real Envoy gets a change a second.

Run: `.venv/bin/python -m bench.hostile [--slow 10] [--churn 2000] [--before 5] [--out FILE]`;
prints the figures as JSON and writes bench/results/hostile.json
(tests/integration/server/test_hostile.py runs the same and asserts on them).

Phases: `before` (only Envoy and the change a second: the propagation baseline), `during`
(every abuser at once, the changes going on), `after` (the abusers gone: memory and the
stream count come back). The abusers, each bounded in count and bytes:

- slow: clients that send but never read — EDS requests padded to 256 KiB that alternate
  their subscription, so each one is answered with all ~200 load assignments, until the
  client's receive window is full and xdscp's writes block; xdscp stops reading, then closes
  the stream after the write timeout (expected: RESOURCE_EXHAUSTED);
- nack: 1000 NACKs of the same nonce, then 1000 with garbage nonces (expected: still open);
- big: a 100k-name EDS subscription (answered: the ~200 that exist), and one request over
  the 8 MiB receive limit (expected: RESOURCE_EXHAUSTED from grpc);
- garbage: 500 requests with garbage type URLs, nonces and versions, then a valid CDS
  request, which must still be answered; and a request without a type URL (INVALID_ARGUMENT);
- bytes: random payloads on the ADS method (expected: INVALID_ARGUMENT when undecodable);
- churn: thousands of streams opened, answered once, and closed (50 at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2  # type: ignore[import-untyped]

from bench.hostile_rig import Changer, Rig, RssProbe, rss_mib, service_names
from xdscp.cache import TypeUrl

RESULTS = Path(__file__).parent / "results" / "hostile.json"
ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
Statuses = dict[str, collections.Counter[str]]


def _node(name: str) -> base_pb2.Node:
    return base_pb2.Node(id=name, cluster="hostile", user_agent_name="envoy")


async def _status(call: Any, drain: bool = False, limit_s: float = 30.0) -> str:
    """The call's final status name (reading everything first when `drain`)."""
    async with asyncio.timeout(limit_s):
        if drain:
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for _ in call:
                    pass
        return str((await call.code()).name)


async def slow_client(
    channel: grpc.aio.Channel, index: int, limit_bytes: int, quiet_s: float
) -> tuple[str, int]:
    """Send padded, alternating EDS requests and never read; (final status, bytes sent)."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    names = service_names()
    padding = [f"pad-{index}-{i}-" + "x" * 250 for i in range(1000)]  # ~256 KiB per request
    sent = 0

    async def pump() -> None:
        nonlocal sent
        node = _node(f"slow-{index}")
        for i in range(limit_bytes // (256 << 10)):
            subscription = names[i % 2 :] + padding
            request = discovery_pb2.DiscoveryRequest(
                node=node, type_url=TypeUrl.ENDPOINT, resource_names=subscription
            )
            await call.write(request)
            sent += request.ByteSize()

    # Never read: the writes block once xdscp stops reading. Once nothing moved for longer
    # than the write timeout, xdscp must have closed the stream; its status comes after the
    # responses, so it is read after draining them.
    task = asyncio.create_task(pump())
    last, quiet_since = -1, time.monotonic()
    while not task.done() and time.monotonic() - quiet_since < quiet_s:
        if sent != last:
            last, quiet_since = sent, time.monotonic()
        await asyncio.sleep(0.1)
    status = await _status(call, drain=True)  # not cancelling the write: it would cancel the call
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        async with asyncio.timeout(10):
            await task
    return status, sent


async def nack_flood(channel: grpc.aio.Channel) -> str:
    """1000 NACKs of one nonce, 1000 with garbage nonces; the stream must stay open."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=_node("nack"), type_url=TypeUrl.CLUSTER))
    first = await call.read()
    error = status_pb2.Status(code=3, message="bad cluster " * 100)
    for i in range(2000):
        nonce = first.nonce if i < 1000 else f"garbage-{i}"
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=TypeUrl.CLUSTER, response_nonce=nonce, error_detail=error
            )
        )
    await call.write(
        discovery_pb2.DiscoveryRequest(
            type_url=TypeUrl.CLUSTER, version_info=first.version_info, response_nonce=first.nonce
        )
    )
    await asyncio.sleep(0.5)  # not synchronization: the window in which a close would show
    state = "open" if not call.done() else await _status(call)
    call.cancel()
    return state


async def big_subscription(channel: grpc.aio.Channel) -> tuple[str, str, float]:
    """(a 100k-name subscription's outcome, an over-limit request's status, seconds)."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.StreamAggregatedResources()
    names = [f"svc-{i:06d}.namespace.example.internal" for i in range(100_000)]
    request = discovery_pb2.DiscoveryRequest(
        node=_node("big"), type_url=TypeUrl.ENDPOINT, resource_names=[*service_names(), *names]
    )
    started = time.monotonic()
    await call.write(request)
    async with asyncio.timeout(30):
        response = await call.read()
    seconds = time.monotonic() - started
    outcome = f"answered with {len(response.resources)} of {len(request.resource_names)}"
    call.cancel()
    huge = stub.StreamAggregatedResources()
    names = [f"n{i:07d}-" + "y" * 100 for i in range(85_000)]  # ~9.3 MiB
    with contextlib.suppress(grpc.aio.AioRpcError):
        await huge.write(
            discovery_pb2.DiscoveryRequest(
                node=_node("huge"), type_url=TypeUrl.ENDPOINT, resource_names=names
            )
        )
    return outcome, await _status(huge), seconds


async def garbage(channel: grpc.aio.Channel, rng: random.Random) -> tuple[str, str]:
    """(garbage type URLs, nonces and versions then a valid CDS request: answered or the
    status; an ADS request without a type URL: the status)."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    for i in range(500):
        text = rng.randbytes(rng.randrange(1, 40)).decode("latin-1")
        type_url = rng.choice([text, "type.googleapis.com/" + text, TypeUrl.ROUTE + text])
        await call.write(
            discovery_pb2.DiscoveryRequest(
                node=_node("garbage") if i == 0 else None,
                type_url=type_url,
                response_nonce=rng.choice(["", text, "99999999", "-1"]),
                version_info=text,
                resource_names=[text] * rng.randrange(3),
            )
        )
    await call.write(discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER))
    answered = "ended"
    with contextlib.suppress(grpc.aio.AioRpcError):
        async with asyncio.timeout(15):
            async for response in call:
                if response.type_url == TypeUrl.CLUSTER:
                    answered = "answered"
                    break
    if answered != "answered":
        answered = await _status(call)
    call.cancel()
    untyped = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await untyped.write(discovery_pb2.DiscoveryRequest(node=_node("untyped")))
    return answered, await _status(untyped)


async def random_bytes(channel: grpc.aio.Channel, rng: random.Random, count: int) -> Statuses:
    """Random payloads, one stream each: statuses by whether the payload decodes."""
    seen: Statuses = {"undecodable": collections.Counter(), "decodable": collections.Counter()}
    method = channel.stream_stream(ADS)  # no serializers: bytes go out as they are
    for _ in range(count):
        payload = rng.randbytes(rng.randrange(1, 2000))
        try:
            discovery_pb2.DiscoveryRequest.FromString(payload)
            kind = "decodable"
        except DecodeError:
            kind = "undecodable"
        call = method()
        await call.write(payload)
        await call.done_writing()
        seen[kind][await _status(call, drain=True)] += 1
    return seen


async def churn(channel: grpc.aio.Channel, count: int, parallel: int = 50) -> int:
    """Open `count` streams (`parallel` at a time), each answered once, then closed."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    answered = 0

    async def one(i: int) -> None:
        nonlocal answered
        call = stub.StreamAggregatedResources()
        request = discovery_pb2.DiscoveryRequest(node=_node(f"churn-{i}"), type_url=TypeUrl.CLUSTER)
        await call.write(request)
        async with asyncio.timeout(30):
            response = await call.read()
        answered += response is not grpc.aio.EOF
        call.cancel()

    for start in range(0, count, parallel):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + parallel))))
    return answered


async def abuse(rig: Rig, slow: int, churn_count: int) -> dict[str, Any]:
    """Every abuser at once, each on its own connection; what each saw."""
    quiet_s = rig.write_timeout_s + 2
    rng = random.Random(12)
    own = [("grpc.use_local_subchannel_pool", 1)]  # a connection each, as separate clients
    target = f"127.0.0.1:{rig.xds_port}"
    channels = [grpc.aio.insecure_channel(target, options=own) for _ in range(6 + slow)]
    try:
        slow_tasks = [slow_client(channels[6 + i], i, 64 << 20, quiet_s) for i in range(slow)]
        results = await asyncio.gather(
            asyncio.gather(*slow_tasks),
            nack_flood(channels[0]),
            big_subscription(channels[1]),
            garbage(channels[2], rng),
            random_bytes(channels[3], rng, 200),
            churn(channels[4], churn_count),
        )
    finally:
        for channel in channels:
            await channel.close()
    slow_results, nack, big, junk, payloads, answered = results
    return {
        "slow": dict(collections.Counter(status for status, _ in slow_results)),
        "slow_sent_mib": round(sum(sent for _, sent in slow_results) / (1 << 20), 1),
        "nack_flood": nack,
        "big_subscription": {
            "100k_names": big[0],
            "seconds": round(big[2], 2),
            "over_8MiB": big[1],
        },
        "garbage_then_valid": junk[0],
        "no_type_url": junk[1],
        "random_bytes": {kind: dict(counts) for kind, counts in payloads.items()},
        "churn_answered": answered,
    }


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return {"n": len(values), "p50": round(statistics.median(ordered), 1),
            "p90": round(p90, 1), "max": round(ordered[-1], 1)}  # fmt: skip


async def _wait_streams(rig: Rig, expected: float, limit_s: float = 20.0) -> float:
    """xdscp_connected_streams summed, once it equals `expected` (or the limit passes)."""
    deadline = time.monotonic() + limit_s
    while True:
        count = sum((await asyncio.to_thread(rig.metric, "xdscp_connected_streams{")).values())
        if count == expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


async def run(workdir: Path, *, slow: int = 10, churn_count: int = 2000, before: int = 5,
              write_timeout_s: float = 5.0) -> dict[str, Any]:  # fmt: skip
    """The whole bench; the figures."""
    rig = Rig(workdir, write_timeout_s=write_timeout_s)
    await asyncio.to_thread(rig.start)
    probe, changer = RssProbe(rig.pid), Changer(rig)
    try:
        rss_before = rss_mib(rig.pid)
        probe.start()
        changer.start()
        limit = before * 2 + 10
        if not await asyncio.to_thread(changer.wait_count, "before", before, limit):
            raise RuntimeError(f"Envoy missed changes before any abuse ({changer.lost} lost)")
        changer.phase = "during"
        started = time.monotonic()
        seen = await abuse(rig, slow, churn_count)
        abuse_s = time.monotonic() - started
        changer.phase = "after"
        streams_after = await _wait_streams(rig, 1.0)  # Envoy's stream only
        changes_during = changer.count("during")
        changer.stop()
        probe.stop()
        figures = {
            "alive": await asyncio.to_thread(rig.alive),
            "rss_mib": {
                "before": round(rss_before, 1),
                "peak": round(probe.peak, 1),
                "after": round(rss_mib(rig.pid), 1),
            },
            "abuse_seconds": round(abuse_s, 1),
            "propagation_ms": {
                phase: _ms([d for p, d in changer.delays_ms if p == phase])
                for phase in ("before", "during", "after")
            },
            "changes_during": changes_during,
            "changes_lost": changer.lost,
            "streams_after": streams_after,
            "stream_errors": await asyncio.to_thread(rig.metric, "xdscp_stream_errors_total{"),
            "stream_aborted_logs": len(rig.log_events("stream_refused"))
            + len([r for r in rig.log_events("stream_closed") if r.get("level") == "warning"]),
            "statuses": seen,
        }
    finally:
        changer.stop()
        probe.stop()
        code = await asyncio.to_thread(rig.stop)
    figures["serve_exit"] = code
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--slow", type=int, default=10, help="never-reading clients")
    parser.add_argument("--churn", type=int, default=2000, help="streams opened and closed")
    parser.add_argument("--before", type=int, default=5, help="changes before the abuse")
    parser.add_argument("--write-timeout", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, help="keep serve's log and Envoy's files here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.slow, args.churn, args.before) < 1 or args.write_timeout <= 0:
        parser.error("--slow, --churn, --before and --write-timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its figures as JSON."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(
            run(args.workdir or Path(tmp), slow=args.slow, churn_count=args.churn,
                before=args.before, write_timeout_s=args.write_timeout)
        )  # fmt: skip
    text = json.dumps(figures, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
