"""The options `xdscp serve` runs with: where it listens, how it translates, its TLS.

Plain data the configuration builds (`xdscp.config.load`) and the plane consumes
(`xdscp.plane` imports it from here; the configuration never imports the plane).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from xdscp.model import check_float, check_int
from xdscp.server import load_server_tls
from xdscp.translate import TranslateOptions

STALE_INTERVALS = 3.5  # a reporter silent this many intervals no longer counts


@dataclass(frozen=True)
class LoadReporting:
    """LRS, served on the xDS port: how often clients report, and the load book's bounds.

    Whether clients are told to report is the translation's `load_reporting` (on by default:
    the measured split beside the predicted one, for every service).
    """

    interval_s: float = 10.0  # clients report every interval (LRS's own minimum: 1 s)
    stale_after_s: float = STALE_INTERVALS * 10.0  # a reporter silent this long no longer counts
    max_entries: int = 100_000  # (reporter, cluster, endpoint) loads kept at most

    def __post_init__(self) -> None:
        check_float("load_reporting.interval", self.interval_s, 1.0, 3600.0)
        check_float("load_reporting.stale_after", self.stale_after_s, self.interval_s, 86400.0)
        check_int("load_reporting.max_entries", self.max_entries, 1, 10_000_000)


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
    load: LoadReporting = field(default_factory=LoadReporting)
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
