"""xDS resource identities shared by translate, cache and server: type URLs and digests.

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


@dataclass(frozen=True, slots=True)
class ResourceType:
    """What the protocol and the tools say of one resource type (`RESOURCE_TYPES`)."""

    url: TypeUrl
    short_name: str  # the message name: status, metrics, CSDS filters and the CLI show it
    api: str  # the discovery service's usual name (CDS, EDS, LDS, RDS)
    option: str  # the CLI's name for it (`xdscp config --type`)
    wildcard: bool  # has a wildcard subscription (no names, or `*`): Listener and Cluster
    full_state: bool  # every state-of-the-world response lists all the stream's resources
    order: int  # the order a client must receive the types in (CDS before EDS, ...)


RESOURCE_TYPES: Mapping[TypeUrl, ResourceType] = MappingProxyType({
    t.url: t
    for t in (
        ResourceType(TypeUrl.CLUSTER, "Cluster", "CDS", "cluster", True, True, 0),
        ResourceType(
            TypeUrl.ENDPOINT, "ClusterLoadAssignment", "EDS", "endpoint", False, False, 1
        ),
        ResourceType(TypeUrl.LISTENER, "Listener", "LDS", "listener", True, True, 2),
        ResourceType(TypeUrl.ROUTE, "RouteConfiguration", "RDS", "route", False, False, 3),
    )
})  # fmt: skip
"""Every resource type xdscp serves, one row each: the one place their properties live."""

TYPE_ORDER: Mapping[TypeUrl, int] = MappingProxyType(
    {u: t.order for u, t in RESOURCE_TYPES.items()}
)
"""Sort key for sending types in the order a client must receive them (`TYPE_ORDER.get`)."""
WILDCARD_TYPES = frozenset(u for u, t in RESOURCE_TYPES.items() if t.wildcard)
"""Types the protocol gives a wildcard subscription (RDS and EDS have none)."""
FULL_STATE = frozenset(u for u, t in RESOURCE_TYPES.items() if t.full_state)
"""Types whose every state-of-the-world response must list all the stream's resources."""


def short_name(type_url: str) -> str:
    """`Cluster` for `type.googleapis.com/envoy.config.cluster.v3.Cluster`; for a type xdscp
    does not serve, the last dotted part of its URL."""
    try:
        return RESOURCE_TYPES[TypeUrl(type_url)].short_name
    except ValueError:
        return type_url.rsplit(".", 1)[-1]


def content_version(data: bytes) -> str:
    """A content hash: the same bytes give the same version on every run and replica."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def entry_digest(name: str, version: str) -> int:
    """A 64-bit hash of one (name, version) entry; a set's version XORs its entries'."""
    data = f"{name}\0{version}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def set_version(digest: int) -> str:
    """The version string of a set of resources from the XOR of their entry digests.

    XOR is order-free and can be updated one entry at a time, so a change to one resource
    among ten thousand costs one step, not a pass over all of them; equal sets always give
    equal versions, on every run and replica. Sixteen hex digits (`f"{digest:016x}"`, made
    from the bytes: half the cost, once per response on every stream).
    """
    return digest.to_bytes(8, "big").hex()


@dataclass(frozen=True, slots=True)
class Resource:
    """One named resource, serialized once as an `Any`, with its content-hash version."""

    type_url: TypeUrl
    name: str
    any_bytes: bytes = field(repr=False)
    version: str = ""
    digest: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", content_version(self.any_bytes))
        object.__setattr__(self, "digest", entry_digest(self.name, self.version))


def combined_digest(resources: Iterable[Resource]) -> int:
    """The XOR of the resources' entry digests (`set_version` makes it a version)."""
    digest = 0
    for resource in resources:
        digest ^= resource.digest
    return digest
