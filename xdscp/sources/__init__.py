"""Discovery sources: etcd, DNS and static files, each publishing the services it owns."""

from xdscp.sources.base import Publish, Source

__all__ = ["Publish", "Source"]
