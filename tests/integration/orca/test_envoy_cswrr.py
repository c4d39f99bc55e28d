"""A real Envoy weighs three `xdscp backend --capacity` processes by their load reports alone.

Capacities 1 : 2 : 4 with equal (absent) registered weights: each backend reports its measured
rate and utilization = rate / capacity, so Envoy's weight `rate / utilization` is the capacity,
whatever rate it receives. The expected shares are therefore exact — 1/7, 2/7, 4/7 — and do not
depend on timing: the test waits until Envoy's own balancer shows the weights (/clusters), on
counts of requests, never on time, then counts the next requests' backends.

The bound, 0.03 of the shares: with fixed weights Envoy's weighted round robin (EDF) is
deterministic and off by under one request per host over a count; the weights are capacity x
(rate / rate), equal to the capacity to the last bit or one below after Envoy truncates to an
integer (a 1 % change of a weight of 100). A loaded machine changes the rates, never the ratio.

The three backends speak the three header formats (TEXT, JSON, BIN): the weights reach 1 : 2 : 4
only if Envoy parsed each. The gRPC test does the same over HTTP/2 with the per-call trailer and
Envoy 1.40's out-of-band ORCA stream (`enable_oob_load_report`) to the backends' OpenRcaService.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2

from tests.integration.orca.harness import (
    backends,
    envoy,
    http_requests,
    ratios,
    stat,
    weights,
)
from xdscp.demo.backend import WHO_METHOD
from xdscp.procs.envoy import EnvoyProcess

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SPECS = [("one", 100.0, "text"), ("two", 200.0, "json"), ("four", 400.0, "bin")]
BOUND = 0.03
BATCH = 50
MAX_WARMUP_BATCHES = 400  # 20 000 requests: far beyond the ~1 s blackout at any speed


def _close(seen: list[float], wanted: list[float]) -> bool:
    return all(abs(s - w) <= 0.02 * w for s, w in zip(seen, wanted, strict=True))


async def _converge(
    proxy: EnvoyProcess, ports: list[int], wanted: list[float], send: Callable[[int], Counter[str]]
) -> tuple[int, float]:
    """Send batches until Envoy's weights have the wanted ratios; (requests, seconds) it took."""
    started, sent = time.monotonic(), 0
    for _ in range(MAX_WARMUP_BATCHES):
        await asyncio.to_thread(send, BATCH)
        sent += BATCH
        if _close(ratios(await asyncio.to_thread(weights, proxy), ports), wanted):
            return sent, time.monotonic() - started
    seen = await asyncio.to_thread(weights, proxy)
    raise AssertionError(f"weights {seen} never reached the ratios {wanted} in {sent} requests")


def _shares(answered: Counter[str], names: list[str]) -> list[float]:
    total = sum(answered.values())
    assert set(answered) <= set(names), answered
    return [answered[name] / total for name in names]


def _report(label: str, shares: list[float], expected: list[float], sent: int, took: float) -> None:
    figures = ", ".join(
        f"{s:.4f} (expected {e:.4f})" for s, e in zip(shares, expected, strict=True)
    )
    print(f"\n{label}: converged after {sent} requests / {took:.1f} s; shares {figures}")


async def test_envoy_shares_follow_the_reported_capacities(tmp_path: Path) -> None:
    """HTTP: shares 1/7, 2/7, 4/7; after one capacity changes (1 → 4 via POST), 2/5, 1/5, 2/5."""
    with backends(SPECS) as started:
        ports = [backend.http_port for backend in started]
        names = [backend.name for backend in started]
        with envoy(tmp_path, ports) as (proxy, port):
            send = lambda count: http_requests(port, count)  # noqa: E731
            sent, took = await _converge(proxy, ports, [1, 2, 4], send)
            shares = _shares(await asyncio.to_thread(send, 1400), names)
            expected = [1 / 7, 2 / 7, 4 / 7]
            _report("capacities 1:2:4", shares, expected, sent, took)
            assert shares == pytest.approx(expected, abs=BOUND)

            assert (await asyncio.to_thread(started[0].post, "/_demo/capacity?rps=400"))[
                "capacity"
            ] == 400
            sent, took = await _converge(proxy, ports, [1, 0.5, 1], send)
            shares = _shares(await asyncio.to_thread(send, 1000), names)
            expected = [2 / 5, 1 / 5, 2 / 5]
            _report("capacities 4:2:4", shares, expected, sent, took)
            assert shares == pytest.approx(expected, abs=BOUND)


def _grpc_calls(port: int) -> Callable[[int], Counter[str]]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    who = channel.unary_unary(
        WHO_METHOD,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )

    def send(count: int) -> Counter[str]:
        return Counter(who(wrappers_pb2.StringValue(), timeout=60).value for _ in range(count))

    return send


async def test_envoy_weighs_grpc_backends_by_trailer_and_out_of_band(tmp_path: Path) -> None:
    """gRPC through Envoy: the same shares, with Envoy's OOB stream receiving reports."""
    with backends(SPECS) as started:
        ports = [backend.grpc_port for backend in started]
        names = [backend.name for backend in started]
        with envoy(tmp_path, ports, grpc=True) as (proxy, port):
            send = _grpc_calls(port)
            sent, took = await _converge(proxy, ports, [1, 2, 4], send)
            shares = _shares(await asyncio.to_thread(send, 1400), names)
            expected = [1 / 7, 2 / 7, 4 / 7]
            _report("gRPC capacities 1:2:4", shares, expected, sent, took)
            assert shares == pytest.approx(expected, abs=BOUND)
            received = await asyncio.to_thread(
                stat, proxy, "cluster.web.lb_orca_oob.reports_received"
            )
            print(f"out-of-band reports received by Envoy: {received}")
            assert received >= len(started)
            assert (
                await asyncio.to_thread(stat, proxy, "cluster.web.lb_orca_oob.stream_failures") == 0
            )
