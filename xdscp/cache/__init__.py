"""Snapshot cache: the latest snapshot per node group, and who to tell when it changes."""

from xdscp.cache.snapshots import SnapshotCache, Watcher

__all__ = ["SnapshotCache", "Watcher"]
