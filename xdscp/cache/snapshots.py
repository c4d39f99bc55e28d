"""Snapshots per node group. The cache never sees a stream: it calls watchers."""

from __future__ import annotations

from collections.abc import Callable

from xdscp.cache.resources import short_name
from xdscp.cache.snapshot import Snapshot

Watcher = Callable[[Snapshot], None]


class SnapshotCache:
    """The latest snapshot of each node group; setting one notifies that group's watchers.

    Groups are named `KIND` or `KIND/VALUE` (see `xdscp.server.nodes`). A `KIND/VALUE` group
    without a snapshot of its own is served its kind's snapshot (and told when that changes),
    so an application embedding xdscp can give one group different content with `set()`.

    Snapshots are immutable and share their serialized resources, so every stream of a group
    holds references to the same bytes (memory per stream is its subscription state).
    """

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, dict[int, Watcher]] = {}
        self._next_id = 0

    def get(self, group: str) -> Snapshot | None:
        """The group's snapshot (its kind's when it has none), None before the first one."""
        own = self._snapshots.get(group)
        return own if own is not None else self._snapshots.get(group.split("/", 1)[0])

    def set(self, group: str, snapshot: Snapshot) -> None:
        """Replace the group's snapshot and notify the streams it serves (if it changed)."""
        previous = self._snapshots.get(group)
        if previous is not None and previous.versions == snapshot.versions:
            return
        self._snapshots[group] = snapshot
        for watched, watchers in list(self._watchers.items()):
            if watched == group or self._inherits(watched, group):
                for watcher in list(watchers.values()):
                    watcher(snapshot)

    def _inherits(self, watched: str, kind: str) -> bool:
        return "/" not in kind and watched.startswith(kind + "/") and watched not in self._snapshots

    def watch(self, group: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with every new snapshot served to `group`; returns the way to stop."""
        self._next_id += 1
        key = self._next_id
        self._watchers.setdefault(group, {})[key] = watcher

        def cancel() -> None:
            watchers = self._watchers.get(group, {})
            watchers.pop(key, None)
            if not watchers:
                self._watchers.pop(group, None)

        return cancel

    def groups(self) -> dict[str, dict[str, str]]:
        """Each group's per-type versions (for the status endpoint)."""
        return {
            group: {short_name(t): v for t, v in snap.versions.items()}
            for group, snap in sorted(self._snapshots.items())
        }

    def resources(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every resource name and version per group and type (for /debug/resources)."""
        return {
            group: {
                short_name(t): {n: r.version for n, r in sorted(snap.resources[t].items())}
                for t in snap.resources
            }
            for group, snap in sorted(self._snapshots.items())
        }
