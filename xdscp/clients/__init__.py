"""What xDS clients are given to find xdscp: Envoy and gRPC bootstrap files."""

from xdscp.clients.bootstrap import (
    NO_LOCALITY,
    XDS_CLUSTER,
    ClientTls,
    EnvoyBootstrapOptions,
    XdsServer,
    check_servers,
    envoy_bootstrap,
    grpc_bootstrap,
    locality_json,
    parse_locality,
)

__all__ = [
    "NO_LOCALITY",
    "XDS_CLUSTER",
    "ClientTls",
    "EnvoyBootstrapOptions",
    "XdsServer",
    "check_servers",
    "envoy_bootstrap",
    "grpc_bootstrap",
    "locality_json",
    "parse_locality",
]
