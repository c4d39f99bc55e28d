"""Snapshots per node group. The cache never sees a stream: it calls watchers."""

from __future__ import annotations

from collections.abc import Callable

from xdscp.resources import Snapshot

Watcher = Callable[[Snapshot], None]


class SnapshotCache:
    """The latest snapshot of each node group; setting one notifies that group's watchers.

    Snapshots are immutable and share their serialized resources, so every stream of a group
    holds references to the same bytes (memory per stream is its subscription state).
    """

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, dict[int, Watcher]] = {}
        self._next_id = 0

    def get(self, group: str) -> Snapshot | None:
        """The group's current snapshot, None before the first one."""
        return self._snapshots.get(group)

    def set(self, group: str, snapshot: Snapshot) -> None:
        """Replace the group's snapshot and notify its watchers (if it changed)."""
        previous = self._snapshots.get(group)
        if previous is not None and previous.versions == snapshot.versions:
            return
        self._snapshots[group] = snapshot
        for watcher in list(self._watchers.get(group, {}).values()):
            watcher(snapshot)

    def watch(self, group: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with every new snapshot of `group`; returns the way to stop."""
        self._next_id += 1
        key = self._next_id
        self._watchers.setdefault(group, {})[key] = watcher

        def cancel() -> None:
            self._watchers.get(group, {}).pop(key, None)

        return cancel

    def groups(self) -> dict[str, dict[str, str]]:
        """Each group's per-type versions (for the status endpoint)."""
        return {
            group: {str(t).rsplit(".", 1)[-1]: v for t, v in snap.versions.items()}
            for group, snap in sorted(self._snapshots.items())
        }

    def resources(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every resource name and version per group and type (for /debug/resources)."""
        return {
            group: {
                str(t).rsplit(".", 1)[-1]: {
                    n: r.version for n, r in sorted(snap.resources[t].items())
                }
                for t in snap.resources
            }
            for group, snap in sorted(self._snapshots.items())
        }
