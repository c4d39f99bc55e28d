"""Client bootstraps that point an Envoy or a proxyless gRPC application at xdscp.

Both are plain JSON documents: Envoy reads its bootstrap once at start (`envoy -c FILE`) and
gRPC reads `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG` (inline JSON) once per
process. Everything else a client needs comes from xdscp over ADS.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from xdscp.errors import ConfigError

XDS_CLUSTER = "xdscp_xds"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True, slots=True)
class XdsServer:
    """One xdscp replica: a host (IP literal or DNS name) and its xDS port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> XdsServer:
        """Parse `HOST:PORT` or `[V6]:PORT`."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                f"xDS server must be HOST:PORT with a port in [1, 65535], got {text!r}"
            )
        return cls(host.strip("[]"), int(port))

    @property
    def is_ip(self) -> bool:
        """True when the host is an IP literal (no DNS needed to reach it)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


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


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _xds_cluster(servers: tuple[XdsServer, ...]) -> dict[str, Any]:
    lb_endpoints = [{"endpoint": {"address": _socket_address(s.host, s.port)}} for s in servers]
    return {
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
                        "connection_keepalive": {"interval": "15s", "timeout": "5s"}
                    }
                },
            }
        },
    }


def envoy_bootstrap(options: EnvoyBootstrapOptions) -> dict[str, Any]:
    """An Envoy v3 bootstrap whose only dynamic configuration source is xdscp's ADS."""
    if not options.servers:
        raise ConfigError("at least one xDS server is needed")
    timeout = _duration(options.initial_fetch_timeout_s)
    ads_source = {"resource_api_version": "V3", "ads": {}, "initial_fetch_timeout": timeout}
    node: dict[str, Any] = {"id": options.node_id, "cluster": options.node_cluster}
    if options.node_metadata:
        node["metadata"] = dict(options.node_metadata)
    return {
        "node": node,
        "admin": {"address": _socket_address(options.admin_address, options.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {"clusters": [_xds_cluster(options.servers)]},
    }


def grpc_bootstrap(
    node_id: str,
    servers: tuple[XdsServer, ...],
    *,
    node_cluster: str = "xdscp",
    node_metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A gRPC xDS bootstrap (gRFC A27) for `xds:///SERVICE` targets.

    `channel_creds` is required: without it a gRPC channel stays in TRANSIENT_FAILURE.
    """
    if not servers:
        raise ConfigError("at least one xDS server is needed")
    node: dict[str, Any] = {"id": node_id, "cluster": node_cluster, "locality": {}}
    if node_metadata:
        node["metadata"] = dict(node_metadata)
    return {
        "xds_servers": [
            {
                "server_uri": str(server),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
            for server in servers
        ],
        "node": node,
    }
