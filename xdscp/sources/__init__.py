"""Discovery sources: etcd, DNS, static files and memory, each publishing the services it owns.

The face of the stage: the `Source` seam and `Publish`, every source, the etcd registry's
layout, format and state, and the registration client applications use (`register`). The
sources' sets are merged by the plane (`xdscp.plane.merge`).
"""

from xdscp.sources.base import Publish, Source
from xdscp.sources.dns import DnsSource
from xdscp.sources.etcd import EtcdRegistrySource, RegistryMetrics, Resolver, StdlibResolver
from xdscp.sources.memory import MemorySource
from xdscp.sources.registration import (
    Format,
    Placement,
    Registered,
    build_registration,
    deregister,
    get_policy,
    policy_key,
    register,
    set_policy,
)
from xdscp.sources.registry_bytes import decode_key, display_key, load_object
from xdscp.sources.registry_format import (
    Registration,
    parse_policy,
    policy_value,
    split_host_port,
)
from xdscp.sources.registry_state import (
    DEFAULT_POLICIES_PREFIX,
    DEFAULT_SERVICES_PREFIX,
    GrpcGoTarget,
    RegistryLayout,
    RegistryState,
    Rejection,
)
from xdscp.sources.services_doc import load_services
from xdscp.sources.static import StaticSource, read_services_file

__all__ = [
    "DEFAULT_POLICIES_PREFIX",
    "DEFAULT_SERVICES_PREFIX",
    "DnsSource",
    "EtcdRegistrySource",
    "Format",
    "GrpcGoTarget",
    "MemorySource",
    "Placement",
    "Publish",
    "Registered",
    "Registration",
    "RegistryLayout",
    "RegistryMetrics",
    "RegistryState",
    "Rejection",
    "Resolver",
    "Source",
    "StaticSource",
    "StdlibResolver",
    "build_registration",
    "decode_key",
    "deregister",
    "display_key",
    "get_policy",
    "load_object",
    "load_services",
    "parse_policy",
    "policy_key",
    "policy_value",
    "read_services_file",
    "register",
    "set_policy",
    "split_host_port",
]
