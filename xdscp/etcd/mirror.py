"""The I/O-free core of a prefix watch: a mirror of the keys and the revision bookkeeping.

The async watcher (`xdscp.etcd.watch`) only moves messages; every decision lives here:

- after a full list at header revision R the mirror is complete up to R, so the watch starts
  at R + 1 (rule 1 of the watch notes — never the highest `mod_revision` seen);
- each delivered event advances the mirror to that event's `mod_revision`; a broken watch
  resumes from `revision + 1` (rule 2 — never the "created" response's header revision);
- a progress notification (no events) proves completeness up to its header revision;
- after a compaction the caller re-lists; `load` diffs the new listing against the mirror and
  returns exactly the changes (rule 3), so nothing is lost, duplicated or left stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from xdscp.etcd.types import KeyValue, WatchEvent, WatchEventType


class PrefixMirror:
    """The current content of one key prefix, and the revision it is complete up to."""

    def __init__(self) -> None:
        self._revisions: dict[bytes, int] = {}  # key -> mod_revision (values are not kept)
        self._revision = 0
        self._loaded = False

    @property
    def revision(self) -> int:
        """Every change up to and including this revision is reflected."""
        return self._revision

    @property
    def loaded(self) -> bool:
        """True once a full listing has been loaded."""
        return self._loaded

    @property
    def next_watch_revision(self) -> int:
        """Where a (re)started watch must begin so that nothing is missed or repeated."""
        return self._revision + 1

    @property
    def revisions(self) -> Mapping[bytes, int]:
        """A read-only view of the mirrored keys and their `mod_revision`.

        Values are not kept: within one key, equal `mod_revision` means equal value, so the
        revision is all a re-list diff needs (and memory stays small for large registries).
        """
        return MappingProxyType(self._revisions)

    def load(self, kvs: Iterable[KeyValue], header_revision: int) -> list[WatchEvent]:
        """Replace the content by a full listing taken at `header_revision`; return the diff."""
        fresh = {kv.key: kv for kv in kvs}
        changes = [
            WatchEvent(WatchEventType.DELETE, key, b"", header_revision)
            for key in sorted(self._revisions.keys() - fresh.keys())
        ]
        for key in sorted(fresh):
            kv = fresh[key]
            if self._revisions.get(key) != kv.mod_revision:
                changes.append(WatchEvent(WatchEventType.PUT, key, kv.value, kv.mod_revision))
        self._revisions = {key: kv.mod_revision for key, kv in fresh.items()}
        self._revision = header_revision
        self._loaded = True
        return changes

    def apply(self, events: Iterable[WatchEvent]) -> list[WatchEvent]:
        """Apply one response's events in order; return those that changed the mirror.

        Events at or below the revision the mirror had before this call are replays and are
        dropped. (Several events may share one revision: a transaction's writes.)
        """
        floor = self._revision
        applied: list[WatchEvent] = []
        for event in events:
            if event.mod_revision <= floor:
                continue
            if event.kind is WatchEventType.PUT:
                self._revisions[event.key] = event.mod_revision
            elif self._revisions.pop(event.key, None) is None:
                self._revision = event.mod_revision
                continue
            self._revision = event.mod_revision
            applied.append(event)
        return applied

    def progress(self, header_revision: int) -> None:
        """A progress notification: no events are pending up to `header_revision`."""
        self._revision = max(self._revision, header_revision)
