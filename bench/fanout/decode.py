"""Resource names and change markers out of a DiscoveryResponse's `Any` values, memoized.

Every stream receives the same resources, so each distinct `Any` value is decoded once.
A change is recognised by its marker address (`resources.change_address`) in a CLA; the
search includes the address's length byte so 127.0.200.1 does not match 127.0.200.12.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench.fanout.resources import CLUSTER_TYPE, ENDPOINT_TYPE, change_address

CACHE_LIMIT = 100_000


def marker_bytes(change: int) -> bytes:
    """The serialized form of change `change`'s address: length byte, then the text."""
    address = change_address(change).encode()
    return bytes([len(address)]) + address


def resource_name(type_url: str, value: bytes) -> str:
    """The name of one serialized Cluster or ClusterLoadAssignment."""
    if type_url == CLUSTER_TYPE:
        return str(cluster_pb2.Cluster.FromString(value).name)
    if type_url == ENDPOINT_TYPE:
        return str(endpoint_pb2.ClusterLoadAssignment.FromString(value).cluster_name)
    return ""


@dataclass(slots=True)
class Decoder:
    """Names and armed-change markers of resources, with a bounded memo per `Any` value."""

    armed: dict[int, bytes] = field(default_factory=dict)
    _names: dict[bytes, str] = field(default_factory=dict)
    _markers: dict[bytes, frozenset[int]] = field(default_factory=dict)

    def arm(self, change: int) -> None:
        """Start recognising change `change` in CLAs."""
        self.armed[change] = marker_bytes(change)
        self._markers.clear()

    def names(self, type_url: str, values: Sequence[bytes]) -> list[str]:
        """The resource names in one response."""
        out = []
        for value in values:
            name = self._names.get(value)
            if name is None:
                name = resource_name(type_url, value)
                if len(self._names) < CACHE_LIMIT:
                    self._names[value] = name
            out.append(name)
        return out

    def markers(self, type_url: str, values: Iterable[bytes]) -> frozenset[int]:
        """The armed changes whose marker appears in any CLA of one response."""
        if type_url != ENDPOINT_TYPE or not self.armed:
            return frozenset()
        found: set[int] = set()
        for value in values:
            hits = self._markers.get(value)
            if hits is None:
                hits = frozenset(k for k, m in self.armed.items() if m in value)
                if len(self._markers) < CACHE_LIMIT:
                    self._markers[value] = hits
            found |= hits
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a stream needs from one serialized DiscoveryResponse."""

    type_url: str
    version: str
    nonce: str
    names: tuple[str, ...]
    markers: frozenset[int]


@dataclass(slots=True)
class ResponseMemo:
    """Parses serialized responses once: every stream usually receives identical bytes.

    Keyed by the whole serialized response, so a server that sends per-stream nonces just
    misses the memo and pays a full parse; bounded in entries.
    """

    decoder: Decoder = field(default_factory=Decoder)
    limit: int = 64
    _parsed: dict[bytes, Parsed] = field(default_factory=dict)

    def arm(self, change: int) -> None:
        """Start recognising change `change`; parsed markers are recomputed."""
        self.decoder.arm(change)
        self._parsed.clear()

    def parse(self, raw: bytes) -> Parsed:
        """The parsed form of one serialized DiscoveryResponse."""
        parsed = self._parsed.get(raw)
        if parsed is None:
            response = discovery_pb2.DiscoveryResponse.FromString(raw)
            values = [item.value for item in response.resources]
            parsed = Parsed(
                response.type_url,
                response.version_info,
                response.nonce,
                tuple(self.decoder.names(response.type_url, values)),
                self.decoder.markers(response.type_url, values),
            )
            if len(self._parsed) < self.limit:
                self._parsed[raw] = parsed
        return parsed
