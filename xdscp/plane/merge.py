"""Merging what the sources publish into one service set: I/O-free, returns data (the
first stage of the `Pipeline`).

Every source publishes its complete set (optionally naming what changed, `ServiceUpdate`).
`SourceMerge` keeps the last set of each source and, on `merge()`, brings the merged set up to
date and says which names changed and which clashes appeared:

- one name in several sources: the first source (in configuration order) keeps it; the
  others' services are left out (`same_name`);
- two names a client cannot tell apart (case, configured domain suffixes: `NameClaims`):
  the name merged first keeps serving; the other is left out (`client_name`) until the first
  goes away, then it is merged without anyone publishing again;
- each clash is reported once while it lasts.

The result is deterministic for a given sequence of publications: names are merged in sorted
order within one `merge()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from xdscp.model import NameClaims, Service, ServiceSet, changed_names


class ClashKind(StrEnum):
    """Why a source's service was left out of the merged set."""

    SAME_NAME = "same_name"
    CLIENT_NAME = "client_name"


@dataclass(frozen=True, slots=True)
class Clash:
    """A service left out: its name, its source, and who keeps the contested name."""

    kind: ClashKind
    service: str
    source: str
    kept_by: str  # SAME_NAME: the source keeping the name; CLIENT_NAME: the service holding it
    client_name: str  # the name a client would see twice


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What one `merge()` changed: names (None: possibly everything) and new clashes."""

    changed: frozenset[str] | None
    clashes: tuple[Clash, ...]


class SourceMerge:
    """The union of the sources' last published sets, without names clients would confuse."""

    def __init__(self, source_names: Sequence[str], domain_suffixes: tuple[str, ...] = ()) -> None:
        self._sources = tuple(source_names)
        self._published: dict[int, ServiceSet] = {}
        self._dirty: set[str] | None = set()  # names to merge again; None: every name
        self._claims = NameClaims(domain_suffixes)
        self._reported: set[tuple[ClashKind, str, str]] = set()  # (kind, service, source)
        self.merged: dict[str, Service] = {}

    @property
    def pending(self) -> bool:
        """True when a publication has not been merged yet."""
        return self._dirty is None or bool(self._dirty)

    def publish(self, index: int, services: ServiceSet) -> None:
        """Source number `index` (0-based, configuration order) published `services`."""
        if not 0 <= index < len(self._sources):
            raise IndexError(f"no source {index}")
        hint = changed_names(services)
        if hint is None or index not in self._published:
            self._dirty = None
        elif self._dirty is not None:
            self._dirty |= hint
        self._published[index] = services if hint is not None else dict(services)

    def merge(self) -> MergeResult:
        """Bring `merged` up to date with every publication since the last call."""
        dirty, self._dirty = self._dirty, set()
        names = self._all_names() if dirty is None else set(dirty)
        names |= self._claims.refused  # a refused name may be free now
        owners = {name: self._owner(name) for name in names}
        present = {name: owner for name, owner in owners.items() if owner is not None}
        changed: set[str] = set()
        for name in sorted(names - present.keys()):  # releases first: they free names
            self._claims.release(name)
            if self.merged.pop(name, None) is not None:
                changed.add(name)
        clashes: list[Clash] = []
        for name in sorted(present):
            clashes += self._merge_one(name, present[name], changed)
        current = {(c.kind, c.service, c.source) for c in clashes}
        resolved = {r for r in self._reported if r[1] in names and r not in current}
        new = tuple(c for c in clashes if (c.kind, c.service, c.source) not in self._reported)
        self._reported = (self._reported - resolved) | current
        return MergeResult(None if dirty is None else frozenset(changed), new)

    def source_of(self, name: str) -> str | None:
        """The name of the source whose `name` is merged (None: not merged)."""
        if name not in self.merged:
            return None
        owner = self._owner(name)
        return None if owner is None else self._sources[owner]

    def _all_names(self) -> set[str]:
        names = set(self.merged)
        for services in self._published.values():
            names.update(services)
        return names

    def _owner(self, name: str) -> int | None:
        return next((i for i in sorted(self._published) if name in self._published[i]), None)

    def _merge_one(self, name: str, owner: int, changed: set[str]) -> list[Clash]:
        clashes = [
            Clash(ClashKind.SAME_NAME, name, self._sources[i], self._sources[owner], name)
            for i in sorted(self._published)
            if i != owner and name in self._published[i]
        ]
        refusal = self._claims.claim(name)
        if refusal is not None:
            holder, client_name = refusal
            source = self._sources[owner]
            clashes.append(Clash(ClashKind.CLIENT_NAME, name, source, holder, client_name))
            if self.merged.pop(name, None) is not None:
                changed.add(name)
            return clashes
        service = self._published[owner][name]
        if self.merged.get(name) is not service:
            self.merged[name] = service
            changed.add(name)
        return clashes
