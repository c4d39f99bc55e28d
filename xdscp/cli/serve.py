"""`xdscp serve`: run the control plane (xDS on one port, admin on another).

Settings come from flags, `XDSCP_<KEY>__<KEY>` environment variables and `--config FILE`
(`xdscp.config`), in that order of precedence; a flag counts only when given (on the command
line or through its own variable such as `XDSCP_ETCD`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path
from typing import Any

import click
import structlog
import yaml
from click.core import ParameterSource
from prometheus_client import disable_created_metrics

from xdscp.cli.registry import etcd_options
from xdscp.config import EtcdRegistryConfig, ServerConfig, load_config
from xdscp.config.options import STALE_INTERVALS
from xdscp.dns import DnsConfig, load_dns_config
from xdscp.errors import ConfigError, ConfigFieldError, ValidationError, XdscpError
from xdscp.etcd import EtcdConfig
from xdscp.model import format_host_port, parse_host_port
from xdscp.plane import ServeOptions, XdsTls, build_plane
from xdscp.plane.control import listen_addresses
from xdscp.registry import GrpcGoTarget, RegistryLayout
from xdscp.server import grouper
from xdscp.server.listen import check_all
from xdscp.signals import Stopper, run_until_stopped
from xdscp.sources import read_services_file

log = structlog.get_logger(__name__)
_FILE = click.Path(exists=True, dir_okay=False)
# The defaults are `ServeOptions`'s own, shown in the help (a flag counts only when given).
_DEFAULTS = ServeOptions()
_xds_default = format_host_port(_DEFAULTS.xds_host, _DEFAULTS.xds_port)
_admin_default = format_host_port(_DEFAULTS.admin_host, _DEFAULTS.admin_port)
_listener_default = format_host_port(
    _DEFAULTS.translate.listener_address, _DEFAULTS.translate.listener_port
)
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
_ETCD_CLIENT_FLAGS = {
    "etcd_ca": "ca_file",
    "etcd_cert": "cert_file",
    "etcd_key": "key_file",
    "etcd_user": "username",
    "etcd_password": "password",
}


def _address(value: str, option: str) -> tuple[str, int]:
    try:
        return parse_host_port(value, min_port=0)
    except ValidationError as exc:
        raise click.BadParameter(exc.message, param_hint=option) from None


def _translate_flags(
    params: dict[str, Any], given: set[str], options: ServeOptions
) -> ServeOptions:
    changes: dict[str, Any] = {}
    if "listener" in given:
        changes["listener_address"], changes["listener_port"] = _address(
            params["listener"], "--listener"
        )
    if "domain_suffix" in given:
        changes["domain_suffixes"] = tuple(params["domain_suffix"])
    if "default_service" in given:
        changes["default_service"] = params["default_service"]
    if "load_reporting" in given:
        changes["load_reporting"] = params["load_reporting"]
    translate = dataclasses.replace(options.translate, **changes)
    return dataclasses.replace(options, translate=translate)


def _load_flags(params: dict[str, Any], given: set[str], options: ServeOptions) -> ServeOptions:
    """`--load-report-interval`: reporters stay fresh for at least `STALE_INTERVALS` of it."""
    if "load_report_interval" not in given:
        return options
    interval = params["load_report_interval"]
    stale = max(options.load.stale_after_s, STALE_INTERVALS * interval)
    load = dataclasses.replace(options.load, interval_s=interval, stale_after_s=stale)
    return dataclasses.replace(options, load=load)


def _tls_flags(params: dict[str, Any], given: set[str], current: XdsTls | None) -> XdsTls | None:
    if not given & {"tls_cert", "tls_key", "tls_client_ca"}:
        return current
    cert = params["tls_cert"] or (current.cert_file if current else None)
    key = params["tls_key"] or (current.key_file if current else None)
    if cert is None or key is None:
        raise click.UsageError("xDS TLS needs both --tls-cert and --tls-key (or xds.tls)")
    client_ca = params["tls_client_ca"] or (current.client_ca_file if current else None)
    return XdsTls(cert, key, client_ca)


def _serve_flags(params: dict[str, Any], given: set[str], options: ServeOptions) -> ServeOptions:
    """`options` (from the file and environment) with the flags that were given."""
    if "xds" in given:
        host, port = _address(params["xds"], "--xds")
        options = dataclasses.replace(options, xds_host=host, xds_port=port)
    if "admin" in given:
        host, port = _address(params["admin"], "--admin")
        options = dataclasses.replace(options, admin_host=host, admin_port=port)
    if "group_by" in given:
        try:
            grouper(params["group_by"])
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--group-by") from None
        options = dataclasses.replace(options, group_by=params["group_by"])
    options = dataclasses.replace(options, tls=_tls_flags(params, given, options.tls))
    if "write_timeout" in given:
        options = dataclasses.replace(options, write_timeout_s=params["write_timeout"])
    return _load_flags(params, given, _translate_flags(params, given, options))


def _etcd_flags(
    params: dict[str, Any],
    given: set[str],
    current: EtcdRegistryConfig | None,
    use_etcd: bool | None,
) -> EtcdRegistryConfig | None:
    """The etcd source: the file's, with the flags given; on when --etcd (or XDSCP_ETCD) or
    the file's `sources.etcd` says so, off with --no-registry."""
    if use_etcd is None:
        use_etcd = current is not None or bool(params["etcd_urls"])
    if not use_etcd:
        return None
    base = current or EtcdRegistryConfig(EtcdConfig(), RegistryLayout())
    client = {new: params[flag] for flag, new in _ETCD_CLIENT_FLAGS.items() if flag in given}
    if "etcd_urls" in given:
        urls = [u for text in params["etcd_urls"] for u in text.split(",") if u.strip()]
        client["endpoints"] = tuple(urls) or base.client.endpoints
    prefixes: tuple[str, ...] = ("services_prefix", "policies_prefix", "routes_prefix")
    layout: dict[str, Any] = {name: params[name] for name in prefixes if name in given}
    if "grpc_targets" in given:
        layout["grpc_targets"] = tuple(GrpcGoTarget.parse(t) for t in params["grpc_targets"])
    return EtcdRegistryConfig(
        dataclasses.replace(base.client, **client), dataclasses.replace(base.layout, **layout)
    )


def _dns_file(path: str) -> DnsConfig:
    """The DNS settings of a `--dns-config` file (its `dns:` section, or the whole file)."""
    try:
        section = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return load_dns_config(section.get("dns") or section)


def resolve(
    ctx: click.Context, params: dict[str, Any], loaded: ServerConfig, use_etcd: bool | None
) -> ServerConfig:
    """The configuration `serve` runs: `loaded` (file + environment) under the given flags."""
    given = {name for name in params if ctx.get_parameter_source(name) in _GIVEN}
    return dataclasses.replace(
        loaded,
        serve=_serve_flags(params, given, loaded.serve),
        static_file=params["static"] if "static" in given else loaded.static_file,
        dns=_dns_file(params["dns_config"]) if "dns_config" in given else loaded.dns,
        etcd=_etcd_flags(params, given, loaded.etcd, use_etcd),
    )


class _EarlyHangup:
    """SIGHUP before serve can reload (while it reads its configuration and starts): kept
    for later instead of ending the process (SIGHUP's default action)."""

    def __init__(self) -> None:
        self.received = False
        signal.signal(signal.SIGHUP, self._note)

    def _note(self, _signum: int, _frame: object) -> None:
        self.received = True


async def _serve(
    config: ServerConfig, loaded: ServerConfig, stopper: Stopper, early_hangup: _EarlyHangup
) -> None:
    """Start, serve until SIGINT/SIGTERM (or a fatal source error), stop. A signal before
    serving began cancels the start; once serving, the first stops gracefully (streams end,
    sources stop) and a second cuts that short."""
    options = config.serve
    check_all(listen_addresses(options))  # before any source connects or any port listens
    # No `*_created` series; process-wide, so the entry point and not an import does it.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    plane = build_plane(config, loaded=loaded)
    try:
        await plane.start()
        click.echo(
            f"xdscp serving xDS on {format_host_port(options.xds_host, plane.xds_port)},"
            f" admin on {format_host_port(options.admin_host, plane.admin.port)}"
        )
        stopper.graceful()
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, plane.reload)
        if early_hangup.received:
            plane.reload()  # asked for while starting: the files may have changed since read
        waiter = asyncio.create_task(plane.wait())
        stopping = asyncio.create_task(stopper.wait())
        await asyncio.wait([waiter, stopping], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopping.cancel()
    finally:
        await plane.stop()
    if not waiter.cancelled() and waiter.exception() is not None:
        raise waiter.exception()  # type: ignore[misc]  # a fatal source error: exit non-zero


def _check_static_file(path: Path) -> None:
    """A `--static` file that does not validate stops serve at once (its line, exit 1); one
    that cannot be read is a usage error. A bad edit later keeps the last good services."""
    try:
        read_services_file(path)
    except ConfigFieldError as exc:
        raise click.ClickException(str(exc)) from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@click.command("serve")
@click.option(
    "--xds",
    metavar="HOST:PORT",
    help=f"xDS gRPC address [default: {_xds_default}].",
)
@click.option(
    "--admin",
    metavar="HOST:PORT",
    help="Admin HTTP address: the dashboard at /, /healthz, /readyz, /metrics, /debug/nodes,"
    " /debug/resources, /status/snapshots and the JSON API /api/services, /api/nodes,"
    f" /api/predict, /api/events (README, Operations) [default: {_admin_default}].",
)
@click.option(
    "--listener",
    metavar="HOST:PORT",
    help=f"The HTTP listener xdscp gives Envoy [default: {_listener_default}].",
)
@click.option("--domain-suffix", multiple=True, help="Extra Host domain per service: NAME<suffix>.")
@click.option("--default-service", default=None, help="Route unknown Host headers to this service.")
@click.option(
    "--static",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of services (re-read on change).",
)
@click.option(
    "--dns-config",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file with a dns: section.",
)
@click.option(
    "--registry/--no-registry",
    "use_etcd",
    default=None,
    help="Watch the etcd registry [default: on with --etcd, XDSCP_ETCD or sources.etcd].",
)
@click.option(
    "--grpc-target",
    "grpc_targets",
    multiple=True,
    metavar="[SERVICE=]TARGET",
    help="A grpc-go naming target to watch in etcd; alone, it feeds the service named by its"
    " last path segment (foo/bar/my-service: my-service).",
)
@click.option(
    "--routes-prefix",
    metavar="PREFIX",
    help="Where the services' routes live in etcd [default: /xdscp/routes/].",
)
@click.option(
    "--group-by",
    metavar="kind|cluster|id|metadata:KEY",
    help=f"Node grouping [default: {_DEFAULTS.group_by}].",
)
@click.option("--tls-cert", type=_FILE, help="Serve xDS over TLS with this certificate (PEM).")
@click.option("--tls-key", type=_FILE, help="The certificate's private key (PEM).")
@click.option(
    "--tls-client-ca",
    type=_FILE,
    help="Require client certificates signed by this CA (mutual TLS).",
)
@click.option(
    "--write-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Close a stream whose client has read nothing for this long"
    f" [default: {_DEFAULTS.write_timeout_s:g}].",
)
@click.option(
    "--load-reporting/--no-load-reporting",
    default=None,
    help="Tell clients to report their load to xdscp (LRS on the xDS port), for the measured"
    " split beside the predicted one [default: on].",
)
@click.option(
    "--load-report-interval",
    type=click.FloatRange(1.0, 3600.0),
    metavar="SECONDS",
    help=f"How often clients report their load (LRS) [default: {_DEFAULTS.load.interval_s:g}].",
)
@click.option(
    "--health-lease-ttl",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="With etcd, replicas elect one health checker with a lease this long: a dead"
    f" checker is replaced within it [default: {_DEFAULTS.health_lease_ttl_s}].",
)
@click.option(
    "--config",
    "config_file",
    type=_FILE,
    help="YAML file with every setting (see examples/xdscp.yaml); flags given override it.",
)
@etcd_options
@click.pass_context
def command(
    ctx: click.Context,
    /,
    use_etcd: bool | None,
    config_file: str | None,
    health_lease_ttl: int | None,
    **params: Any,
) -> None:
    """Run the control plane: watch the sources, serve xDS to Envoy and gRPC clients."""
    early_hangup = _EarlyHangup()
    try:
        loaded = load_config(config_file)
        config = resolve(ctx, params, loaded, use_etcd)
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None
    if config.static_file is not None:
        _check_static_file(Path(config.static_file))
    if not config.has_sources:
        raise click.UsageError(
            "give at least one source: --etcd URL, --static FILE, --dns-config FILE"
            " or --config FILE with a sources: section"
        )
    if health_lease_ttl is not None:
        config = dataclasses.replace(
            config, serve=dataclasses.replace(config.serve, health_lease_ttl_s=health_lease_ttl)
        )
    try:
        run_until_stopped(lambda stopper: _serve(config, loaded, stopper, early_hangup))
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None
