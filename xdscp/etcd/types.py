"""Plain data for what the etcd client returns: key-values, watch events, key ranges."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class WatchEventType(IntEnum):
    """What happened to a key (the numbers are etcd's `mvccpb.Event.EventType`)."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as stored in etcd at some revision."""

    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int = 0
    version: int = 0
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change to one key. For DELETE, `value` is empty and `mod_revision` is the deletion's."""

    kind: WatchEventType
    key: bytes
    value: bytes
    mod_revision: int


def prefix_range_end(prefix: bytes) -> bytes:
    """The `range_end` that makes a Range or Watch cover every key starting with `prefix`.

    Same rule as etcd's `clientv3.GetPrefixRangeEnd`: increment the last byte below 0xff and
    drop what follows; an empty or all-0xff prefix means "every key" (`b"\\0"`).
    """
    end = bytearray(prefix)
    for index in range(len(end) - 1, -1, -1):
        if end[index] < 0xFF:
            end[index] += 1
            return bytes(end[: index + 1])
    return b"\0"


def kv_from_pb(message: Any) -> KeyValue:
    """Convert an `mvccpb.KeyValue` message."""
    return KeyValue(
        key=bytes(message.key),
        value=bytes(message.value),
        mod_revision=int(message.mod_revision),
        create_revision=int(message.create_revision),
        version=int(message.version),
        lease=int(message.lease),
    )


def event_from_pb(message: Any) -> WatchEvent:
    """Convert an `mvccpb.Event` message."""
    kind = WatchEventType(int(message.type))
    value = b"" if kind is WatchEventType.DELETE else bytes(message.kv.value)
    return WatchEvent(kind, bytes(message.kv.key), value, int(message.kv.mod_revision))
