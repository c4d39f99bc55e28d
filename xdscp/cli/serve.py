"""`xdscp serve`: run the control plane (xDS on one port, admin on another)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import click
import structlog
import yaml

from xdscp.app import ControlPlane, ServeOptions
from xdscp.cli.registry import etcd_config, etcd_options
from xdscp.dns import DnsMetrics, DnsResolver, load_dns_config
from xdscp.errors import XdscpError
from xdscp.etcd import EtcdClient
from xdscp.sources.base import Source
from xdscp.sources.dns import DnsSource
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.sources.registry_state import GrpcGoTarget, RegistryLayout
from xdscp.sources.static import StaticSource
from xdscp.translate import TranslateOptions

log = structlog.get_logger(__name__)


def _address(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)
    return host.strip("[]"), int(port)


def _options(params: dict[str, Any]) -> ServeOptions:
    xds_host, xds_port = _address(params["xds"], "--xds")
    admin_host, admin_port = _address(params["admin"], "--admin")
    listener_host, listener_port = _address(params["listener"], "--listener")
    translate = TranslateOptions(
        listener_address=listener_host,
        listener_port=listener_port,
        domain_suffixes=tuple(params["domain_suffix"]),
        default_service=params["default_service"],
    )
    return ServeOptions(xds_host, xds_port, admin_host, admin_port, translate)


def _dns(path: Path, plane: ControlPlane) -> tuple[Source, DnsResolver]:
    """The DNS source of a `dns:` file, and its resolver (also used for etcd hostnames)."""
    section = yaml.safe_load(path.read_text()) or {}
    config = load_dns_config(section.get("dns") or section)
    resolver = DnsResolver(config.resolver)
    source = DnsSource(
        config.services,
        refresh=config.refresh,
        resolver=resolver,
        metrics=DnsMetrics(plane.registry),
    )
    return source, resolver


async def _serve(params: dict[str, Any], use_etcd: bool) -> None:
    options = _options(params)
    async with contextlib.AsyncExitStack() as stack:
        sources: list[Source] = []
        if params["static"]:
            sources.append(StaticSource(Path(params["static"])))
        plane = ControlPlane(sources, options)
        resolver = None
        if params["dns_config"]:
            dns_source, resolver = _dns(Path(params["dns_config"]), plane)
            sources.append(dns_source)
        if use_etcd:
            client = await stack.enter_async_context(EtcdClient(etcd_config(params)))
            targets = tuple(GrpcGoTarget.parse(t) for t in params["grpc_targets"])
            layout = RegistryLayout(params["services_prefix"], params["policies_prefix"], targets)
            # With a dns: section, hostnames in registrations use the same resolver.
            sources.append(EtcdRegistrySource(client, layout, resolver=resolver))
        plane.sources = sources
        await plane.start()
        click.echo(
            f"xdscp serving xDS on {options.xds_host}:{plane.xds_port},"
            f" admin on {options.admin_host}:{plane.admin.port}"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(plane.wait())
        await asyncio.wait(
            [waiter, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        await plane.stop()


@click.command("serve")
@click.option(
    "--xds",
    default="127.0.0.1:18000",
    show_default=True,
    metavar="HOST:PORT",
    help="xDS gRPC address.",
)
@click.option(
    "--admin",
    default="127.0.0.1:18001",
    show_default=True,
    metavar="HOST:PORT",
    help="Admin HTTP address (/ready, /status/nodes, /metrics).",
)
@click.option(
    "--listener",
    default="0.0.0.0:10000",
    show_default=True,
    metavar="HOST:PORT",
    help="The HTTP listener xdscp gives Envoy.",
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
    help="Watch the etcd registry [default: on when --etcd or XDSCP_ETCD is given].",
)
@click.option(
    "--grpc-target",
    "grpc_targets",
    multiple=True,
    metavar="[SERVICE=]TARGET",
    help="A grpc-go naming target to watch in etcd.",
)
@etcd_options
def command(use_etcd: bool | None, **params: Any) -> None:
    """Run the control plane: watch the sources, serve xDS to Envoy and gRPC clients."""
    if use_etcd is None:
        use_etcd = bool(params["etcd_urls"])
    if not (use_etcd or params["static"] or params["dns_config"]):
        raise click.UsageError(
            "give at least one source: --etcd URL, --static FILE or --dns-config FILE"
        )
    try:
        asyncio.run(_serve(params, use_etcd))
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None
