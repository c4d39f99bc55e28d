"""The requests a stream state takes and the responses it emits, as plain data.

`wire.py` decodes a DiscoveryRequest or DeltaDiscoveryRequest into a `Request` or
`DeltaRequest`, and encodes a `Response` or `DeltaResponse` into bytes: protobuf stays at
the edge, and the stream states (`protocol.py`, `delta.py`) see only these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xdscp.cache import Resource


def contents_key(resources: Iterable[Resource]) -> tuple[tuple[str, str], ...]:
    """A response's resources by name and content version: equal keys, equal bytes."""
    return tuple((r.name, r.version) for r in resources)


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a DiscoveryRequest the protocol needs."""

    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()
    error_message: str | None = None  # a NACK's error detail; None unless a NACK


@dataclass(frozen=True, slots=True)
class Response:
    """A DiscoveryResponse to send: its resources are shared, already serialized."""

    type_url: str  # a TypeUrl, or the unserved type a request named
    version_info: str
    nonce: str
    resources: tuple[Resource, ...]

    @property
    def version(self) -> str:
        """The version it carries."""
        return self.version_info

    def cache_key(self) -> tuple[Any, ...]:
        """Equal keys mean equal bytes: every resource by name and content version."""
        key = contents_key(self.resources)
        return ("sotw", self.type_url, self.version_info, self.nonce, key)


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    """The parts of a DeltaDiscoveryRequest the protocol needs."""

    type_url: str
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: Mapping[str, str] = field(default_factory=dict)
    response_nonce: str = ""
    error_message: str | None = None  # a NACK's error detail; None unless a NACK


@dataclass(frozen=True, slots=True)
class DeltaResponse:
    """A DeltaDiscoveryResponse to send: changed resources (shared bytes) and removed names."""

    type_url: str  # a TypeUrl, or the unserved type a request named
    nonce: str
    system_version: str
    resources: tuple[Resource, ...]
    removed: tuple[str, ...]

    @property
    def version(self) -> str:
        """The version it carries."""
        return self.system_version

    def cache_key(self) -> tuple[Any, ...]:
        """Equal keys mean equal bytes: every resource by name and content version."""
        key = contents_key(self.resources)
        return ("delta", self.type_url, self.system_version, self.nonce, key, self.removed)
