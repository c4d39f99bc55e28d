"""Client bootstraps that point an Envoy or a proxyless gRPC application at xdscp.

Both are plain JSON documents: Envoy reads its bootstrap once at start (`envoy -c FILE`) and
gRPC reads `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG` (inline JSON) once per
process. Everything else a client needs comes from xdscp over ADS.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from xdscp.errors import ConfigError, ValidationError
from xdscp.keepalive import ENVOY_PING_INTERVAL_S, ENVOY_PING_TIMEOUT_S
from xdscp.model import Locality, format_host_port, parse_host_port

XDS_CLUSTER = "xdscp_xds"
# Envoy's ADS reconnection: the first retry within 0.1 s (on the next replica, round robin),
# then doubling; the cap is Envoy's own default.
ADS_RETRY_BASE_S = 0.1
ADS_RETRY_MAX_S = 30.0
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_LOCALITY_PARTS = ("region", "zone", "sub_zone")
NO_LOCALITY = Locality()


@dataclass(frozen=True, slots=True)
class XdsServer:
    """One xdscp replica: a host (IP literal or DNS name) and its xDS port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> XdsServer:
        """Parse `HOST:PORT` or `[V6]:PORT`."""
        try:
            return cls(*parse_host_port(text, field="xDS server"))
        except ValidationError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def is_ip(self) -> bool:
        """True when the host is an IP literal (no DNS needed to reach it)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def check_servers(servers: tuple[XdsServer, ...]) -> tuple[XdsServer, ...]:
    """The servers, in order, once checked: at least one, none named twice (an IP literal
    compared as an address, a name without regard to case)."""
    if not servers:
        raise ConfigError("at least one xDS server is needed")
    seen: set[tuple[object, int]] = set()
    for server in servers:
        host = ipaddress.ip_address(server.host) if server.is_ip else server.host.lower()
        if (host, server.port) in seen:
            raise ConfigError(f"xDS server {server} is given twice")
        seen.add((host, server.port))
    return servers


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a client reaches a TLS-serving xdscp: the CA that signed xdscp's certificate
    (None: the system's roots) and, for mutual TLS, the client's certificate and key.

    The paths are written into the bootstrap as given: the client reads them, not xdscp.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a client certificate needs its key, and a key its certificate")
        if self.ca_file is None and self.cert_file is None:
            raise ConfigError("TLS needs a CA file, a client certificate and key, or both")


def parse_locality(text: str) -> Locality:
    """`REGION[/ZONE[/SUB_ZONE]]`; a part left empty is unset (`/zone-a`: a zone only)."""
    parts = text.split("/")
    if len(parts) > len(_LOCALITY_PARTS) or not any(parts):
        raise ConfigError(f"locality must be REGION[/ZONE[/SUB_ZONE]], got {text!r}")
    for part in parts:
        if part != part.strip() or not part.isprintable():
            raise ConfigError(f"locality parts must be printable, without edge spaces: {text!r}")
    return Locality(*parts)


def locality_json(locality: Locality) -> dict[str, str]:
    """The bootstrap's `node.locality`: only the parts that are set (Envoy and gRPC alike)."""
    values = (locality.region, locality.zone, locality.sub_zone)
    return {name: value for name, value in zip(_LOCALITY_PARTS, values, strict=True) if value}


@dataclass(frozen=True, slots=True)
class EnvoyBootstrapOptions:
    """What `xdscp bootstrap envoy` needs to know."""

    node_id: str
    servers: tuple[XdsServer, ...]
    node_cluster: str = "xdscp"
    admin_address: str = "127.0.0.1"
    admin_port: int = 9901
    initial_fetch_timeout_s: float = 5.0
    node_metadata: dict[str, str] = field(default_factory=dict)
    delta: bool = False  # incremental xDS (DELTA_GRPC) instead of state of the world
    tls: ClientTls | None = None
    locality: Locality = NO_LOCALITY
    load_reporting: bool = True  # report load (LRS) to xdscp over the xDS cluster


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _san_matchers(servers: tuple[XdsServer, ...]) -> list[dict[str, Any]]:
    """xdscp's certificate must name the replica's host, as gRPC checks it (IP or DNS SAN)."""
    matchers: list[dict[str, Any]] = []
    for server in servers:
        host = ipaddress.ip_address(server.host).compressed if server.is_ip else server.host
        matcher = {"san_type": "IP_ADDRESS" if server.is_ip else "DNS", "matcher": {"exact": host}}
        if matcher not in matchers:
            matchers.append(matcher)
    return matchers


def _transport_socket(tls: ClientTls, servers: tuple[XdsServer, ...]) -> dict[str, Any]:
    """TLS to the xDS cluster: h2 by ALPN, xdscp's certificate verified, mTLS if asked."""
    validation: dict[str, Any] = (
        {"trusted_ca": {"filename": tls.ca_file}} if tls.ca_file else {"system_root_certs": {}}
    )
    validation["match_typed_subject_alt_names"] = _san_matchers(servers)
    common: dict[str, Any] = {"alpn_protocols": ["h2"], "validation_context": validation}
    if tls.cert_file and tls.key_file:
        common["tls_certificates"] = [
            {"certificate_chain": {"filename": tls.cert_file},
             "private_key": {"filename": tls.key_file}}
        ]  # fmt: skip
    context: dict[str, Any] = {"@type": f"type.googleapis.com/{_UPSTREAM_TLS}"}
    names = sorted({s.host for s in servers if not s.is_ip})
    if len(names) == 1:
        context["sni"] = names[0]
    elif names:  # several names: each connection sends the name its endpoint was resolved from
        context["auto_host_sni"] = True
    context["common_tls_context"] = common
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _xds_cluster(servers: tuple[XdsServer, ...], tls: ClientTls | None) -> dict[str, Any]:
    lb_endpoints = [{"endpoint": {"address": _socket_address(s.host, s.port)}} for s in servers]
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        # Names (for example compose service names) need DNS; IP literals do not.
        "type": "STATIC" if all(s.is_ip for s in servers) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": lb_endpoints}],
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_time": 10, "keepalive_interval": 5, "keepalive_probes": 3}
        },
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {
                            "interval": f"{ENVOY_PING_INTERVAL_S:g}s",
                            "timeout": f"{ENVOY_PING_TIMEOUT_S:g}s",
                        }
                    }
                },
            }
        },
    }
    if tls is not None:
        cluster["transport_socket"] = _transport_socket(tls, servers)
    return cluster


def envoy_bootstrap(options: EnvoyBootstrapOptions) -> dict[str, Any]:
    """An Envoy v3 bootstrap whose only dynamic configuration source is xdscp's ADS.

    Every server is an endpoint of one xDS cluster, not a `grpc_services` entry of its own
    (Envoy takes a second one only as an experimental failover, behind a restart feature).
    Each ADS stream goes to one endpoint picked by round robin from a random start, so a fleet
    spreads over the replicas; when a stream breaks Envoy keeps the configuration it has and
    opens the next stream on the next endpoint, and every replica serves the same versions.
    """
    check_servers(options.servers)
    timeout = _duration(options.initial_fetch_timeout_s)
    ads_source = {"resource_api_version": "V3", "ads": {}, "initial_fetch_timeout": timeout}
    node: dict[str, Any] = {"id": options.node_id, "cluster": options.node_cluster}
    if options.node_metadata:
        node["metadata"] = dict(options.node_metadata)
    if locality := locality_json(options.locality):
        node["locality"] = locality
    bootstrap = {
        "node": node,
        "admin": {"address": _socket_address(options.admin_address, options.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": _ads_service()}],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {"clusters": [_xds_cluster(options.servers, options.tls)]},
    }
    if options.load_reporting:
        bootstrap["cluster_manager"] = {"load_stats_config": _load_stats_config()}
    return bootstrap


def _ads_service() -> dict[str, Any]:
    """The ADS stream's service: the xDS cluster, reconnected after a jittered backoff from
    `ADS_RETRY_BASE_S` (Envoy's default starts at 0.5 s), doubling up to `ADS_RETRY_MAX_S`."""
    back_off = {
        "base_interval": _duration(ADS_RETRY_BASE_S),
        "max_interval": _duration(ADS_RETRY_MAX_S),
    }
    return {"cluster_name": XDS_CLUSTER, "retry_policy": {"retry_back_off": back_off}}


def _load_stats_config() -> dict[str, Any]:
    """LRS to xdscp, over the xDS cluster: xdscp serves `LoadReportingService` on its xDS
    port, and says in its response which clusters to report, how often and per endpoint."""
    return {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "set_node_on_first_message_only": True,
        "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
    }


def _grpc_channel_creds(tls: ClientTls | None) -> list[dict[str, Any]]:
    """`insecure`, or `tls` (gRFC A65: the file-watcher provider's fields; no CA file: the
    system's roots). grpcio and grpc-go take it as it is, with no environment variable."""
    if tls is None:
        return [{"type": "insecure"}]
    fields = {
        "ca_certificate_file": tls.ca_file,
        "certificate_file": tls.cert_file,
        "private_key_file": tls.key_file,
    }
    return [{"type": "tls", "config": {k: v for k, v in fields.items() if v}}]


def grpc_bootstrap(
    node_id: str,
    servers: tuple[XdsServer, ...],
    *,
    node_cluster: str = "xdscp",
    node_metadata: dict[str, str] | None = None,
    tls: ClientTls | None = None,
    locality: Locality = NO_LOCALITY,
) -> dict[str, Any]:
    """A gRPC xDS bootstrap (gRFC A27) for `xds:///SERVICE` targets.

    `channel_creds` is required: without it a gRPC channel stays in TRANSIENT_FAILURE. There
    is no keepalive to set: gRPC's xDS channel pings every 5 minutes, which xdscp's server
    accepts (`xdscp.keepalive`).

    Several servers are `xds_servers` in the order given: the first is the primary, the next
    ones fallbacks (gRFC A71, on by default in grpc-go and grpcio 1.85). gRPC falls back only
    while the primary is unreachable and a channel needs a resource it has not got (a new
    channel, a new target), and goes back to the primary once it answers; a channel holding
    all it needs keeps it and waits for the primary. One server whose DNS name resolves to
    every replica moves running channels too: they reconnect to another address.
    """
    check_servers(servers)
    node: dict[str, Any] = {"id": node_id, "cluster": node_cluster}
    if located := locality_json(locality):
        node["locality"] = located
    if node_metadata:
        node["metadata"] = dict(node_metadata)
    return {
        "xds_servers": [
            {
                "server_uri": str(server),
                "channel_creds": _grpc_channel_creds(tls),
                "server_features": ["xds_v3"],
            }
            for server in servers
        ],
        "node": node,
    }
