"""`Snapshot`: every resource one group of clients should have, and its lineage.

A snapshot derived from its parent (`Snapshot.updated`) records what differs from it, so a
stream holding the parent finds what to send in O(changes). The store that keeps the latest
snapshot per group is `xdscp.cache.snapshots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

import immutables

from xdscp.cache.resources import Resource, TypeUrl, combined_digest, set_version

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
