"""DNS discovery: declared services resolved from A/AAAA/SRV records, TTL-aware.

The public API: `DnsService`, `ResolverConfig`, `RefreshPolicy`, `DnsConfig` and
`load_dns_config` (configuration), `DnsResolver` (async lookups; `resolve_host` for hostnames
in etcd registrations), `ServiceTracker` (the I/O-free refresh state machine) and
`DnsMetrics`. The pipeline source is `xdscp.sources.dns.DnsSource`.
"""

from xdscp.dns.config import (
    DnsConfig,
    DnsService,
    MissingPolicy,
    RecordType,
    RefreshPolicy,
    ResolverConfig,
    load_dns_config,
)
from xdscp.dns.errors import (
    DnsLookupError,
    DnsNoDataError,
    DnsNxdomainError,
    DnsRefusedError,
    DnsServfailError,
    DnsTimeoutError,
)
from xdscp.dns.metrics import DnsMetrics
from xdscp.dns.resolver import DnsResolver, Lookup
from xdscp.dns.state import Note, ServiceTracker, Status, Step

__all__ = [
    "DnsConfig",
    "DnsLookupError",
    "DnsMetrics",
    "DnsNoDataError",
    "DnsNxdomainError",
    "DnsRefusedError",
    "DnsResolver",
    "DnsServfailError",
    "DnsService",
    "DnsTimeoutError",
    "Lookup",
    "MissingPolicy",
    "Note",
    "RecordType",
    "RefreshPolicy",
    "ResolverConfig",
    "ServiceTracker",
    "Status",
    "Step",
    "load_dns_config",
]
