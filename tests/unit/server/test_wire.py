"""The wire edge: requests decoded into plain data, responses encoded into the bytes protobuf
would write, for any field values (hypothesis)."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cache import Resource, TypeUrl
from xdscp.server.messages import DeltaRequest, DeltaResponse, Request, Response
from xdscp.server.wire import decode_delta_request, decode_request, encode

_text = st.text(max_size=20)
_names = st.lists(_text, max_size=5).map(tuple)
_errors = st.none() | _text
_resources = st.lists(
    st.tuples(st.text(min_size=1, max_size=10), st.binary(max_size=30)),
    max_size=4,
    unique_by=lambda p: p[0],
)


def _status(error: str | None) -> dict[str, status_pb2.Status]:
    return {} if error is None else {"error_detail": status_pb2.Status(message=error)}


@given(_text, _text, _text, _names, _errors)
def test_a_discovery_request_decodes_to_its_fields(
    type_url: str, version: str, nonce: str, names: tuple[str, ...], error: str | None
) -> None:
    """Every field the protocol reads; a NACK is a request with `error_detail`, even empty."""
    message = discovery_pb2.DiscoveryRequest(
        type_url=type_url, version_info=version, response_nonce=nonce, resource_names=names,
        **_status(error),
    )  # fmt: skip
    wire = discovery_pb2.DiscoveryRequest.FromString(message.SerializeToString())
    assert decode_request(wire) == Request(type_url, version, nonce, names, error)


@given(_text, _names, _names, st.dictionaries(_text, _text, max_size=3), _text, _errors)
def test_a_delta_request_decodes_to_its_fields(  # noqa: PLR0917 - one per field
    type_url: str,
    subscribe: tuple[str, ...],
    unsubscribe: tuple[str, ...],
    initial: dict[str, str],
    nonce: str,
    error: str | None,
) -> None:
    """Every field the delta protocol reads, the initial versions as a plain mapping."""
    message = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url, resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe, initial_resource_versions=initial,
        response_nonce=nonce, **_status(error),
    )  # fmt: skip
    wire = discovery_pb2.DeltaDiscoveryRequest.FromString(message.SerializeToString())
    expected = DeltaRequest(type_url, subscribe, unsubscribe, initial, nonce, error)
    assert decode_delta_request(wire) == expected


def _built(pairs: list[tuple[str, bytes]]) -> tuple[Resource, ...]:
    def packed(value: bytes) -> bytes:
        return any_pb2.Any(type_url=str(TypeUrl.CLUSTER), value=value).SerializeToString()

    return tuple(Resource(TypeUrl.CLUSTER, name, packed(value)) for name, value in pairs)


@given(_text, _text, _resources, st.text(min_size=1, max_size=20))
def test_a_response_encodes_as_protobuf_would(
    version: str, nonce: str, pairs: list[tuple[str, bytes]], identifier: str
) -> None:
    """A state-of-the-world response: the same bytes protobuf serializes."""
    resources = _built(pairs)
    plane = base_pb2.ControlPlane(identifier=identifier)
    response = Response(str(TypeUrl.CLUSTER), version, nonce, resources)
    expected = discovery_pb2.DiscoveryResponse(
        version_info=version, type_url=str(TypeUrl.CLUSTER), nonce=nonce,
        resources=[any_pb2.Any.FromString(r.any_bytes) for r in resources],
    )  # fmt: skip
    assert encode(response) == expected.SerializeToString()
    expected.control_plane.CopyFrom(plane)
    assert encode(response, plane.SerializeToString()) == expected.SerializeToString()


@given(_text, _text, _resources, _names)
def test_a_delta_response_encodes_as_protobuf_would(
    version: str, nonce: str, pairs: list[tuple[str, bytes]], removed: tuple[str, ...]
) -> None:
    """A delta response: resources with their names and versions, and the removed names."""
    resources = _built(pairs)
    data = encode(DeltaResponse(str(TypeUrl.CLUSTER), nonce, version, resources, removed))
    expected = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=version, type_url=str(TypeUrl.CLUSTER), nonce=nonce,
        removed_resources=removed,
        resources=[
            discovery_pb2.Resource(
                name=r.name, version=r.version, resource=any_pb2.Any.FromString(r.any_bytes)
            )
            for r in resources
        ],
    )  # fmt: skip
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(data) == expected
