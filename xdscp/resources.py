"""xDS resource identities shared by translate, cache and server: type URLs and snapshots.

No protobuf is imported here: a resource travels as the serialized `google.protobuf.Any`
bytes that go into `DiscoveryResponse.resources`, built once and shared by every stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class TypeUrl(StrEnum):
    """The four resource types xdscp serves, in the order a client must receive them."""

    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def content_version(data: bytes) -> str:
    """A content hash: the same bytes give the same version on every run and replica."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Resource:
    """One named resource, serialized once as an `Any`, with its content-hash version."""

    type_url: TypeUrl
    name: str
    any_bytes: bytes = field(repr=False)
    version: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", content_version(self.any_bytes))


def _type_version(resources: Mapping[str, Resource]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(resources):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(resources[name].version.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every resource of every type that one group of clients should have, at one instant."""

    resources: Mapping[TypeUrl, Mapping[str, Resource]]
    versions: Mapping[TypeUrl, str] = field(init=False)

    def __post_init__(self) -> None:
        frozen = {t: MappingProxyType(dict(self.resources.get(t, {}))) for t in TypeUrl}
        object.__setattr__(self, "resources", MappingProxyType(frozen))
        object.__setattr__(
            self, "versions", MappingProxyType({t: _type_version(frozen[t]) for t in TypeUrl})
        )

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Snapshot:
        """Build a snapshot from a flat list of resources."""
        grouped: dict[TypeUrl, dict[str, Resource]] = {t: {} for t in TypeUrl}
        for resource in resources:
            grouped[resource.type_url][resource.name] = resource
        return cls(grouped)
