"""DiscoveryResponse bytes assembled from resources serialized once.

Each resource's `Any` bytes are shared by every stream that receives them: a response is the
per-stream fields (version, type URL, nonce, control plane) around those bytes, joined
without re-encoding. Field numbers are DiscoveryResponse's (envoy.service.discovery.v3).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdscp.resources import Resource

_VERSION_INFO, _RESOURCES, _TYPE_URL, _NONCE, _CONTROL_PLANE = 1, 2, 4, 5, 6
_LEN = 2  # wire type: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


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
