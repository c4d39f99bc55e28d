"""Responses are encoded once for every stream that is sent the same one."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, wrappers_pb2
from prometheus_client import CollectorRegistry

from xdscp.cache import Resource, SnapshotCache, TypeUrl
from xdscp.server import StatusBoard, XdsMetrics, XdsService
from xdscp.server.delta import DeltaResponse
from xdscp.server.protocol import Response


def _resource(value: str) -> Resource:
    wrapped = any_pb2.Any()
    wrapped.Pack(wrappers_pb2.StringValue(value=value))
    return Resource(TypeUrl.CLUSTER, "a", wrapped.SerializeToString())


def _service() -> XdsService:
    return XdsService(SnapshotCache(), XdsMetrics(CollectorRegistry()), StatusBoard())


def test_equal_responses_share_one_encoding_and_different_ones_do_not() -> None:
    """The same version, nonce and resources give the very same bytes object; another
    resource version, another nonce or a delta response give their own, each decoding to
    exactly what was asked for."""
    service = _service()
    a1, a2 = _resource("one"), _resource("two")
    first = service._encode(Response(TypeUrl.CLUSTER, "v1", "1", (a1,)))
    again = service._encode(Response(TypeUrl.CLUSTER, "v1", "1", (a1,)))
    assert first is again
    other_content = service._encode(Response(TypeUrl.CLUSTER, "v1", "1", (a2,)))
    other_nonce = service._encode(Response(TypeUrl.CLUSTER, "v1", "2", (a1,)))
    delta = service._encode(DeltaResponse(TypeUrl.CLUSTER, "1", "v1", (a1,), ()))
    assert len({first, other_content, other_nonce, delta}) == 4
    decoded = discovery_pb2.DiscoveryResponse.FromString(other_content)
    assert (decoded.version_info, decoded.nonce) == ("v1", "1")
    assert decoded.resources[0].SerializeToString() == a2.any_bytes
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(delta).resources[0].name == "a"
