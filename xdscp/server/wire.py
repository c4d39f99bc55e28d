"""DiscoveryResponse and DeltaDiscoveryResponse bytes assembled from resources serialized once.

Each resource's `Any` bytes are shared by every stream that receives them: a response is the
per-stream fields (version, type URL, nonce, control plane) around those bytes, joined
without re-encoding. Field numbers are DiscoveryResponse's (envoy.service.discovery.v3).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdscp.protowire import field
from xdscp.resources import Resource

_VERSION_INFO, _RESOURCES, _TYPE_URL, _NONCE, _CONTROL_PLANE = 1, 2, 4, 5, 6
_field = field


def encode_response(
    version_info: str,
    type_url: str,
    nonce: str,
    resources: Sequence[Resource],
    control_plane: bytes = b"",
) -> bytes:
    """The serialized DiscoveryResponse (fields in number order, as protobuf writes them)."""
    parts = [_field(_VERSION_INFO, version_info.encode())] if version_info else []
    parts.extend(_field(_RESOURCES, r.any_bytes) for r in resources)
    parts.append(_field(_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(_field(_NONCE, nonce.encode()))
    if control_plane:
        parts.append(_field(_CONTROL_PLANE, control_plane))
    return b"".join(parts)


_D_SYSTEM_VERSION, _D_RESOURCES, _D_TYPE_URL, _D_NONCE, _D_REMOVED, _D_CONTROL_PLANE = (
    1,
    2,
    4,
    5,
    6,
    7,
)
_R_VERSION, _R_RESOURCE, _R_NAME = 1, 2, 3  # envoy.service.discovery.v3.Resource


def _delta_resource(resource: Resource) -> bytes:
    return (
        _field(_R_VERSION, resource.version.encode())
        + _field(_R_RESOURCE, resource.any_bytes)
        + _field(_R_NAME, resource.name.encode())
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
    parts = [_field(_D_SYSTEM_VERSION, system_version.encode())] if system_version else []
    parts.extend(_field(_D_RESOURCES, _delta_resource(r)) for r in resources)
    parts.append(_field(_D_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(_field(_D_NONCE, nonce.encode()))
    parts.extend(_field(_D_REMOVED, name.encode()) for name in removed)
    if control_plane:
        parts.append(_field(_D_CONTROL_PLANE, control_plane))
    return b"".join(parts)
