"""Discovery sources: etcd, DNS, static files and memory, each publishing the services it owns.

The face of the stage: the `Source` seam and `Publish`, and every source. The etcd registry's
schema and the registration client are `xdscp.registry`; the sources' sets are merged by the
plane (`xdscp.plane.merge`).
"""

from xdscp.sources.base import Publish, Source
from xdscp.sources.dns import DnsSource
from xdscp.sources.etcd import EtcdRegistrySource, RegistryMetrics, Resolver, StdlibResolver
from xdscp.sources.memory import MemorySource
from xdscp.sources.services_doc import load_services
from xdscp.sources.static import StaticSource, read_services_file

__all__ = [
    "DnsSource",
    "EtcdRegistrySource",
    "MemorySource",
    "Publish",
    "RegistryMetrics",
    "Resolver",
    "Source",
    "StaticSource",
    "StdlibResolver",
    "load_services",
    "read_services_file",
]
