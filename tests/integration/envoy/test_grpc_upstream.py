"""gRPC backends behind a real Envoy: `upstream_protocol: http2` is what makes them reachable."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest
from google.protobuf import wrappers_pb2

from tests.harness.plane import EnvoyStarter, Plane, plane_admin, running_backends
from xdscp.demo.backend import WHO_METHOD, BackendConfig
from xdscp.model import BalancingPolicy, Endpoint, LbPolicy, Service, UpstreamProtocol
from xdscp.testing import wait_for

pytestmark = pytest.mark.envoy


async def _who(channel: grpc.aio.Channel) -> str:
    call = channel.unary_unary(
        WHO_METHOD,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    answer = await call(wrappers_pb2.StringValue(), timeout=2)
    return str(answer.value)


async def _in_sync(plane: Plane, cluster_version: str | None = None) -> str:
    """Wait until Envoy accepted everything sent; the Cluster version it holds (one other
    than `cluster_version`, when given)."""

    async def accepted() -> str | None:
        nodes = await plane_admin(plane, "/debug/nodes")
        types = nodes[0]["types"] if nodes else {}
        if not types or not all(t["in_sync"] for t in types.values()):
            return None
        version = str(types["Cluster"]["acked_version"])
        return version if version != cluster_version else None

    return await wait_for(accepted, 30.0, interval=0.01, what="Envoy accepting the change")


async def test_grpc_through_envoy_needs_and_gets_http2_upstreams(
    plane: Plane, envoy: EnvoyStarter
) -> None:
    """Two gRPC-only backends weighted 1:3 behind Envoy. With HTTP/1.1 upstreams (the
    default) an RPC through Envoy fails; after `upstream_protocol: http2` reaches Envoy (a
    CDS change), 40 RPCs split exactly 10/30 as weighted round robin predicts."""
    configs = [BackendConfig(f"b{i}", http_port=-1) for i in range(2)]
    async with running_backends(configs) as backends:
        endpoints = tuple(
            Endpoint("127.0.0.1", b.grpc_port, weight=w)
            for b, w in zip(backends, (1, 3), strict=True)
        )
        http1 = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN)
        plane.source.set({"web": Service("web", endpoints, http1)})
        await envoy()
        before = await _in_sync(plane)
        options = [("grpc.default_authority", "web")]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.listener_port}", options) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await _who(ch)
            http2 = BalancingPolicy(
                lb=LbPolicy.WEIGHTED_ROUND_ROBIN, upstream_protocol=UpstreamProtocol.HTTP2
            )
            plane.source.set({"web": Service("web", endpoints, http2)})
            await _in_sync(plane, before)
            counts = Counter([await _who(ch) for _ in range(40)])
    assert counts == {"b0": 10, "b1": 30}
