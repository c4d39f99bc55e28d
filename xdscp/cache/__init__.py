"""Snapshot cache: resources, snapshots and their lineage, the latest snapshot per node group.

`resources` holds the type URLs and content-hash digests; `snapshot` the immutable
`Snapshot` a translation produces (each derived from its parent); `snapshots` the store that
tells watchers (the open streams) when their group's snapshot changes.
"""

from xdscp.cache.resources import (
    FULL_STATE,
    RESOURCE_TYPES,
    TYPE_ORDER,
    WILDCARD_TYPES,
    Resource,
    ResourceType,
    TypeUrl,
    combined_digest,
    content_version,
    entry_digest,
    set_version,
    short_name,
)
from xdscp.cache.snapshot import Changes, Snapshot
from xdscp.cache.snapshots import SnapshotCache, Watcher

__all__ = [
    "FULL_STATE",
    "RESOURCE_TYPES",
    "TYPE_ORDER",
    "WILDCARD_TYPES",
    "Changes",
    "Resource",
    "ResourceType",
    "Snapshot",
    "SnapshotCache",
    "TypeUrl",
    "Watcher",
    "combined_digest",
    "content_version",
    "entry_digest",
    "set_version",
    "short_name",
]
