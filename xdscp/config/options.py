"""The options `xdscp serve` runs with: where it listens, how it translates, its TLS.

Plain data the configuration builds (`xdscp.config.load`) and the plane consumes
(`xdscp.plane` imports it from here; the configuration never imports the plane).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from xdscp.server import load_server_tls
from xdscp.translate import TranslateOptions


@dataclass(frozen=True)
class ServeOptions:
    """Where the control plane listens and how it translates."""

    xds_host: str = "127.0.0.1"
    xds_port: int = 18000
    admin_host: str = "127.0.0.1"
    admin_port: int = 18001
    translate: TranslateOptions = field(default_factory=TranslateOptions)
    identifier: str = "xdscp"
    group_by: str = "kind"  # kind | cluster | id | metadata:KEY (see xdscp.server.nodes)
    tls: XdsTls | None = None
    write_timeout_s: float = 30.0  # a stream whose client reads nothing this long is closed
    health_lease_ttl_s: int = 5  # with etcd: the health checker's leader lease
    weigh_interval_s: float = 1.0  # how often adaptive services' weights are decided


@dataclass(frozen=True)
class XdsTls:
    """TLS on the xDS port; with `client_ca`, clients must present a certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials from the PEM files, read and checked now (before the port is
        bound): a bad file is a `ConfigError` naming it and what is wrong."""
        files = load_server_tls(self.cert_file, self.key_file, self.client_ca_file)
        return grpc.ssl_server_credentials(
            [(files.key, files.cert)],
            root_certificates=files.client_ca,
            require_client_auth=files.client_ca is not None,
        )
