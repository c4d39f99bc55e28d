"""`xdscp serve --config FILE`: the whole server in one YAML file, validated line by line.

Every key is optional; a missing key takes the default of the matching `xdscp serve` flag.
`examples/xdscp.yaml` is the annotated reference (a test loads it, so it stays current)::

    xds:
      address: 127.0.0.1:18000          # HOST:PORT of the xDS gRPC server      --xds
      group_by: kind                    # kind | cluster | id | metadata:KEY    --group-by
      tls: {cert: F, key: F, client_ca: F}   # client_ca: mutual TLS           --tls-*
      write_timeout: 30                 # s without the client reading: close  --write-timeout
      weigh_interval: 1                 # s between two decisions of adaptive weights
    admin:
      address: 127.0.0.1:18001          #                                       --admin
    listener:                           # the HTTP listener every Envoy is given
      address: 0.0.0.0                  # IP literal                            --listener
      port: 10000
      domain_suffixes: [.svc.local]     #                                       --domain-suffix
      default_service: web              #                                       --default-service
    sources:
      static:
        services: {NAME: {policy: {...}, routes: [...], endpoints: [{address: IP, port: N}]}}
        file: services.yaml             # a separate services file              --static
      etcd:                             # present (even empty): watch etcd      --registry
        endpoints: [http://127.0.0.1:2379]                                    # --etcd
        services_prefix: /xdscp/services/
        policies_prefix: /xdscp/policies/
        routes_prefix: /xdscp/routes/
        grpc_targets: ["[SERVICE=]TARGET"]                                    # --grpc-target
        tls: {ca: F, cert: F, key: F}                                         # --etcd-ca ...
        username: U                                                           # --etcd-user
        password: P                                                           # --etcd-password
      dns: {resolver: {...}, refresh: {...}, services: [...]}   # xdscp/dns/README.md

Relative file paths are relative to the configuration file's directory. Values are checked
by the model's own rules (`Endpoint`, `BalancingPolicy`, `Service`, the DNS loader, ...);
unknown keys are errors. Every error is a `ConfigFieldError` naming the origin and the path:
`xdscp.yaml:12: sources.static.services.web.endpoints[1].weight: must be in [1, ...], got 0`.

Environment overrides: `XDSCP_<KEY>__<KEY>...` (upper case, `__` between levels) replaces one
key: `XDSCP_XDS__ADDRESS=0.0.0.0:18000`, `XDSCP_SOURCES__ETCD__ENDPOINTS=a:2379,b:2379` (list
keys split on commas), `XDSCP_SOURCES__ETCD__PASSWORD=...`. Inside `sources.static.services`
and `sources.dns`, and for whole sections, the value is read as YAML. An empty value restores
the default. Names without `__` (`XDSCP_ETCD`, ...) are not overrides. A bad override's error
names the variable. Precedence: a flag given on the command line > environment > file >
default.

Reloading: `serve` re-reads the file when it changes (`ConfigServicesSource`) and applies
`sources.static.services` again, keeping the last good services when the edit does not
validate; the other keys take effect at the next start.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from xdscp.config.options import ServeOptions
from xdscp.config.raw import RawConfig, apply_environment, parse_yaml
from xdscp.config.sections import (
    SCHEMA,
    EtcdRegistryConfig,
    dns_section,
    etcd_section,
    serve_options,
)
from xdscp.dns import DnsConfig
from xdscp.errors import ConfigError
from xdscp.model import Service, ServiceSet
from xdscp.sources import StaticSource
from xdscp.sources.services_doc import services_section

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """Everything `xdscp serve` needs; `static_services` None: the file declares none."""

    serve: ServeOptions = dataclasses.field(default_factory=ServeOptions)
    static_services: Mapping[str, Service] | None = None
    static_file: str | None = None
    etcd: EtcdRegistryConfig | None = None
    dns: DnsConfig | None = None
    path: Path | None = None

    @property
    def has_sources(self) -> bool:
        """True when at least one discovery source is configured."""
        sources = (self.static_services, self.static_file, self.etcd, self.dns)
        return any(s is not None for s in sources)

    def needs_restart(self, other: ServerConfig) -> list[str]:
        """The settings that differ from `other`, besides the static services."""
        names = ("serve", "static_file", "etcd", "dns")
        return [n for n in names if getattr(self, n) != getattr(other, n)]


def build(raw: RawConfig) -> ServerConfig:
    """Validate the raw values into a `ServerConfig` (the first bad value raises)."""
    raw.mapping((), SCHEMA)
    raw.mapping(("sources",), SCHEMA["sources"])
    static = ("sources", "static")
    raw.mapping(static, SCHEMA["sources"]["static"])
    services = (*static, "services")
    return ServerConfig(
        serve=serve_options(raw),
        static_services=services_section(raw, services) if raw.has(services) else None,
        static_file=raw.file((*static, "file")),
        etcd=etcd_section(raw, ("sources", "etcd")) if raw.has(("sources", "etcd")) else None,
        dns=dns_section(raw, ("sources", "dns")) if raw.has(("sources", "dns")) else None,
    )


# --- entry points ------------------------------------------------------------------------


def load_config(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The configuration of `path` (None: defaults only) with `environ`'s overrides applied.

    `environ` defaults to `os.environ`. Raises `ConfigFieldError` for a bad value, `ConfigError`
    when the file cannot be read.
    """
    raw = RawConfig({}, "environment")
    file = Path(path) if path is not None else None
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from None
        raw = parse_yaml(text, str(file), file.parent)
    apply_environment(raw, os.environ if environ is None else environ, SCHEMA)
    return dataclasses.replace(build(raw), path=file)


class ConfigServicesSource(StaticSource):
    """`sources.static.services` of a configuration file, applied again when the file changes.

    The whole file is re-validated on every change (with the same environment); a file that
    no longer validates keeps the last good services, with the line and field logged. Other
    sections are read at start only: a change to them is logged (`config_change_needs_restart`).
    """

    def __init__(
        self, path: Path, environ: Mapping[str, str], loaded: ServerConfig, *, poll_s: float = 0.1
    ) -> None:
        super().__init__(path, poll_s=poll_s)
        self._environ = dict(environ)
        self._loaded = loaded

    @property
    def name(self) -> str:
        """Source name for logs and readiness."""
        return "config"

    def read(self) -> ServiceSet:
        """Load and validate the whole file now; its static services."""
        config = load_config(self.path, self._environ)
        changed = config.needs_restart(self._loaded)
        if changed:
            log.warning("config_change_needs_restart", path=str(self.path), sections=changed)
        return dict(config.static_services or {})
