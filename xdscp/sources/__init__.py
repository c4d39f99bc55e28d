"""Discovery sources: etcd, DNS, static files and memory, each publishing the services it owns.

The face of the stage: the `Source` seam and `Publish`, every source, and the merge of their
sets. The etcd registry's schema and the registration client are `xdscp.registry`.
"""

from xdscp.sources.base import Publish, Source
from xdscp.sources.dns import DnsSource
from xdscp.sources.etcd import EtcdRegistrySource, RegistryMetrics, Resolver, StdlibResolver
from xdscp.sources.memory import MemorySource
from xdscp.sources.merge import Clash, ClashKind, MergeResult, SourceMerge
from xdscp.sources.services_doc import load_services
from xdscp.sources.static import StaticSource, read_services_file

__all__ = [
    "Clash",
    "ClashKind",
    "DnsSource",
    "EtcdRegistrySource",
    "MemorySource",
    "MergeResult",
    "Publish",
    "RegistryMetrics",
    "Resolver",
    "Source",
    "SourceMerge",
    "StaticSource",
    "StdlibResolver",
    "load_services",
    "read_services_file",
]
