"""The runtime's weighing: `ControlPlane.weigh` hands the pipeline the clients' samples (the
`LoadSamples` seam) and serves what changed; the periodic task ticks it."""

from __future__ import annotations

import dataclasses
import time

from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import any_pb2

from xdscp.cache import TypeUrl
from xdscp.load import LoadSample, Samples
from xdscp.model import AdaptiveSettings, BalancingPolicy, Endpoint, LbPolicy, Service
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.sources import MemorySource
from xdscp.testing import wait_for

POLICY = BalancingPolicy(
    lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
    adaptive_weights=AdaptiveSettings(min_push_interval=0.0, max_step=100.0, smoothing=1.0),
)
WEB = {"web": Service("web", (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)), POLICY)}


def _samples(now: float) -> Samples:
    """b serves three times what a does at the same utilization: three times the capacity."""
    return {
        "web": [LoadSample("10.0.0.1:80", now, 10.0, 0.5), LoadSample("10.0.0.2:80", now, 30, 0.5)]
    }


def _plane(interval_s: float = 1.0) -> ControlPlane:
    options = ServeOptions(xds_port=0, admin_port=0, weigh_interval_s=interval_s)
    return build_plane(
        ServerConfig(serve=options), sources=[MemorySource(WEB)], load_samples=_samples
    )


def _envoy_weights(plane: ControlPlane) -> dict[str, int]:
    snapshot = plane.cache.get("envoy")
    assert snapshot is not None
    cla = endpoint_pb2.ClusterLoadAssignment()
    any_pb2.Any.FromString(snapshot.resources[TypeUrl.ENDPOINT]["web"].any_bytes).Unpack(cla)
    return {
        f"{e.endpoint.address.socket_address.address}:80": e.load_balancing_weight.value
        for group in cla.endpoints
        for e in group.lb_endpoints
    }


def _pushes(plane: ControlPlane) -> float:
    value = plane.metrics_registry.get_sample_value(
        "xdscp_adaptive_weight_pushes_total", {"service": "web"}
    )
    return value or 0.0


async def test_weigh_serves_the_computed_weights_and_counts_the_push() -> None:
    plane = _plane()
    plane.pipeline.publish(0, WEB)
    plane.rebuild()
    assert set(_envoy_weights(plane).values()) == {1000}
    assert plane.weigh(1.0, time.time()) == {"web"}
    assert _envoy_weights(plane) == {"10.0.0.1:80": 333, "10.0.0.2:80": 1000}
    assert _pushes(plane) == 1
    assert plane.weigh(2.0, time.time()) == frozenset()  # the same decision: no push
    assert _pushes(plane) == 1
    served = {"10.0.0.1:80": 333, "10.0.0.2:80": 1000}
    assert plane.view.weights_status() == {
        "mode": "local", "publishing": True, "publisher": None, "load_from": None,
        "services": {"web": {"served": served, "decided": served, "imposed": False}},
    }  # fmt: skip


async def test_no_adaptive_service_reads_no_samples() -> None:
    read: list[float] = []
    plain = {"web": dataclasses.replace(WEB["web"], policy=BalancingPolicy())}
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)),
        sources=[MemorySource(plain)],
        load_samples=lambda now: read.append(now) or {},  # type: ignore[func-returns-value]
    )
    plane.pipeline.publish(0, plain)
    plane.rebuild()
    assert plane.weigh(1.0, time.time()) == frozenset()
    assert read == []


async def test_the_running_plane_ticks_the_weights() -> None:
    """Started, the periodic task pushes the computed weights on its own."""
    plane = _plane(interval_s=0.05)
    await plane.start()
    try:
        await wait_for(lambda: _pushes(plane) >= 1, 10.0)
        await wait_for(lambda: _envoy_weights(plane)["10.0.0.1:80"] == 333, 10.0)
    finally:
        await plane.stop()
