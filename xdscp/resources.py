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
from typing import cast

import immutables


class TypeUrl(StrEnum):
    """The four resource types xdscp serves, in the order a client must receive them."""

    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


TYPE_ORDER: Mapping[TypeUrl, int] = MappingProxyType({t: i for i, t in enumerate(TypeUrl)})
"""Sort key for sending types in the order a client must receive them (`TYPE_ORDER.get`)."""


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
    equal versions, on every run and replica.
    """
    return f"{digest:016x}"


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


Changes = Mapping[TypeUrl, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every resource of every type that one group of clients should have, at one instant.

    A snapshot made by `updated()` also records the names that differ from its parent
    (`changes`) and the parent's versions (`parent_versions`), so a stream that holds the
    parent can find what to send without comparing every resource.
    """

    resources: Mapping[TypeUrl, Mapping[str, Resource]]  # immutables.Map once built
    versions: Mapping[TypeUrl, str] = field(init=False)
    digests: Mapping[TypeUrl, int] = field(init=False, repr=False)
    changes: Changes | None = field(default=None, repr=False)
    parent_versions: Mapping[TypeUrl, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        frozen = {t: immutables.Map(self.resources.get(t, {})) for t in TypeUrl}
        object.__setattr__(self, "resources", MappingProxyType(frozen))
        digests = {t: combined_digest(frozen[t].values()) for t in TypeUrl}
        self._set_digests(digests)

    def _set_digests(self, digests: dict[TypeUrl, int]) -> None:
        object.__setattr__(self, "digests", MappingProxyType(digests))
        versions = {t: set_version(d) for t, d in digests.items()}
        object.__setattr__(self, "versions", MappingProxyType(versions))

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Snapshot:
        """Build a snapshot from a flat list of resources."""
        grouped: dict[TypeUrl, dict[str, Resource]] = {t: {} for t in TypeUrl}
        for resource in resources:
            grouped[resource.type_url][resource.name] = resource
        return cls(grouped)

    def updated(
        self, upserts: Iterable[Resource], removals: Mapping[TypeUrl, Iterable[str]]
    ) -> Snapshot:
        """A new snapshot with `upserts` set and `removals` gone; costs O(changes).

        Pools are persistent maps: the new snapshot shares all but the changed entries with
        this one, which stays as it was.
        """
        maps = cast(Mapping[TypeUrl, immutables.Map[str, Resource]], self.resources)
        pools = {t: maps[t].mutate() for t in TypeUrl}
        digests = dict(self.digests)
        changed: dict[TypeUrl, set[str]] = {t: set() for t in TypeUrl}
        for type_url, names in removals.items():
            for name in names:
                old = pools[type_url].pop(name, None)
                if old is not None:
                    digests[type_url] ^= old.digest
                    changed[type_url].add(name)
        for resource in upserts:
            type_url = resource.type_url
            old = pools[type_url].get(resource.name)
            if old is not None and old.version == resource.version:
                continue
            pools[type_url][resource.name] = resource
            digests[type_url] ^= resource.digest ^ (old.digest if old is not None else 0)
            changed[type_url].add(resource.name)
        frozen = {t: pools[t].finish() if changed[t] else maps[t] for t in TypeUrl}
        return Snapshot._assemble(frozen, digests, changed, self.versions)

    @classmethod
    def _assemble(
        cls,
        frozen: dict[TypeUrl, immutables.Map[str, Resource]],
        digests: dict[TypeUrl, int],
        changed: dict[TypeUrl, set[str]],
        parent_versions: Mapping[TypeUrl, str],
    ) -> Snapshot:
        snapshot = object.__new__(cls)
        object.__setattr__(snapshot, "resources", MappingProxyType(frozen))
        snapshot._set_digests(digests)
        changes = MappingProxyType({t: frozenset(n) for t, n in changed.items()})
        object.__setattr__(snapshot, "changes", changes)
        object.__setattr__(snapshot, "parent_versions", parent_versions)
        return snapshot
