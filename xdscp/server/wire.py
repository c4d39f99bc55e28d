"""The wire edge of the stream states: requests decoded into plain data, responses encoded.

`decode_request` / `decode_delta_request` turn a (Delta)DiscoveryRequest message into the
`messages.Request` / `DeltaRequest` the stream states take; `encode` turns the
`messages.Response` / `DeltaResponse` they emit into bytes. Each resource's `Any` bytes are
shared by every stream that receives them: a response is the per-stream fields (version,
type URL, nonce, control plane) around those bytes, joined without re-encoding. Field
numbers are DiscoveryResponse's (envoy.service.discovery.v3).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from xdscp.cache import Resource
from xdscp.cache.protowire import field
from xdscp.server.messages import DeltaRequest, DeltaResponse, Request, Response


def _nack_error(message: Any) -> str | None:
    """A request's `error_detail` message: None unless the request is a NACK."""
    return message.error_detail.message if message.HasField("error_detail") else None


def decode_request(message: Any) -> Request:
    """The protocol's view of a DiscoveryRequest (a NACK carries `error_detail`)."""
    return Request(
        type_url=message.type_url,
        version_info=message.version_info,
        response_nonce=message.response_nonce,
        resource_names=tuple(message.resource_names),
        error_message=_nack_error(message),
    )


def decode_delta_request(message: Any) -> DeltaRequest:
    """The protocol's view of a DeltaDiscoveryRequest (a NACK carries `error_detail`)."""
    return DeltaRequest(
        type_url=message.type_url,
        subscribe=tuple(map(sys.intern, message.resource_names_subscribe)),  # shared strings
        unsubscribe=tuple(message.resource_names_unsubscribe),
        initial_versions=dict(message.initial_resource_versions),
        response_nonce=message.response_nonce,
        error_message=_nack_error(message),
    )


def encode(response: Response | DeltaResponse, control_plane: bytes = b"") -> bytes:
    """A response's bytes, around its resources' shared ones."""
    if isinstance(response, Response):
        return encode_response(
            response.version_info, response.type_url, response.nonce, response.resources,
            control_plane,
        )  # fmt: skip
    return encode_delta_response(
        response.system_version, response.type_url, response.nonce, response.resources,
        removed=response.removed, control_plane=control_plane,
    )  # fmt: skip


_VERSION_INFO, _RESOURCES, _TYPE_URL, _NONCE, _CONTROL_PLANE = 1, 2, 4, 5, 6


def encode_response(
    version_info: str,
    type_url: str,
    nonce: str,
    resources: Sequence[Resource],
    control_plane: bytes = b"",
) -> bytes:
    """The serialized DiscoveryResponse (fields in number order, as protobuf writes them)."""
    parts = [field(_VERSION_INFO, version_info.encode())] if version_info else []
    parts.extend(field(_RESOURCES, r.any_bytes) for r in resources)
    parts.append(field(_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(field(_NONCE, nonce.encode()))
    if control_plane:
        parts.append(field(_CONTROL_PLANE, control_plane))
    return b"".join(parts)


# DeltaDiscoveryResponse field numbers
_D_SYSTEM_VERSION, _D_RESOURCES, _D_TYPE_URL, _D_NONCE, _D_REMOVED = 1, 2, 4, 5, 6
_D_CONTROL_PLANE = 7
_R_VERSION, _R_RESOURCE, _R_NAME = 1, 2, 3  # envoy.service.discovery.v3.Resource


def _delta_resource(resource: Resource) -> bytes:
    return (
        field(_R_VERSION, resource.version.encode())
        + field(_R_RESOURCE, resource.any_bytes)
        + field(_R_NAME, resource.name.encode())
    )


def encode_delta_response(
    system_version: str,
    type_url: str,
    nonce: str,
    resources: Sequence[Resource],
    *,
    removed: Sequence[str] = (),
    control_plane: bytes = b"",
) -> bytes:
    """The serialized DeltaDiscoveryResponse (fields in number order)."""
    parts = [field(_D_SYSTEM_VERSION, system_version.encode())] if system_version else []
    parts.extend(field(_D_RESOURCES, _delta_resource(r)) for r in resources)
    parts.append(field(_D_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(field(_D_NONCE, nonce.encode()))
    parts.extend(field(_D_REMOVED, name.encode()) for name in removed)
    if control_plane:
        parts.append(field(_D_CONTROL_PLANE, control_plane))
    return b"".join(parts)
