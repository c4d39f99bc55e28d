"""Protobuf wire-format pieces, for messages assembled from parts serialized once.

Deterministic protobuf serialization writes fields in field-number order; a message whose
parts are cached bytes can therefore be assembled by concatenation and come out byte for
byte as the library would write it (the tests check this).
"""

from __future__ import annotations

LENGTH_DELIMITED = 2  # wire type of strings, bytes and embedded messages


def varint(value: int) -> bytes:
    """`value` as a base-128 varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return varint(number << 3 | LENGTH_DELIMITED) + varint(len(payload)) + payload


def any_bytes(type_url: str, value: bytes) -> bytes:
    """A serialized `google.protobuf.Any` holding `value` (type_url = 1, value = 2)."""
    return field(1, type_url.encode()) + field(2, value)
