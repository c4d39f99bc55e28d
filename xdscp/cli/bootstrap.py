"""`xdscp bootstrap envoy|grpc`: print a client bootstrap that points at xdscp."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import yaml

from xdscp.cli.params import key_values
from xdscp.clients import (
    NO_LOCALITY,
    ClientTls,
    EnvoyBootstrapOptions,
    XdsServer,
    check_servers,
    envoy_bootstrap,
    grpc_bootstrap,
    parse_locality,
)
from xdscp.errors import ConfigError
from xdscp.model import Locality


def _servers(values: tuple[str, ...]) -> tuple[XdsServer, ...]:
    try:
        return check_servers(tuple(XdsServer.parse(v) for v in values))
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--xds") from None


def _tls(ca: str | None, cert: str | None, key: str | None) -> ClientTls | None:
    if ca is None and cert is None and key is None:
        return None
    try:
        return ClientTls(ca, cert, key)
    except ConfigError:
        raise click.UsageError("--tls-cert and --tls-key go together (mutual TLS)") from None


def _locality(value: str | None) -> Locality:
    if value is None:
        return NO_LOCALITY
    try:
        return parse_locality(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--locality") from None


def _client_options(function: Callable[..., None]) -> Callable[..., None]:
    """The options both bootstraps share: TLS to xdscp and the node's locality."""
    options = [
        click.option(
            "--tls-ca",
            metavar="FILE",
            help="Connect over TLS, verifying xdscp's certificate with this CA (PEM).",
        ),
        click.option(
            "--tls-cert",
            metavar="FILE",
            help="Connect over TLS with this client certificate (PEM; mutual TLS).",
        ),
        click.option("--tls-key", metavar="FILE", help="The client certificate's key (PEM)."),
        click.option(
            "--locality",
            metavar="REGION[/ZONE[/SUB_ZONE]]",
            help="The node's locality (`/ZONE` for a zone without a region).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _emit(document: dict[str, Any], fmt: str) -> None:
    if fmt == "yaml":
        click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)
    else:
        click.echo(json.dumps(document, indent=2))


_xds_option = click.option(
    "--xds",
    "xds",
    multiple=True,
    required=True,
    metavar="HOST:PORT",
    help=(
        "An xdscp replica's xDS address; repeat for several replicas. Envoy spreads its"
        " streams over them and moves on when one fails; gRPC uses the first and falls back"
        " to the next (gRFC A71). A DNS name of every replica also moves running gRPC channels."
    ),
)
_node_id_option = click.option("--node-id", required=True, help="The client's node id.")
_cluster_option = click.option(
    "--node-cluster", default="xdscp", show_default=True, help="The client's node cluster."
)
_metadata_option = click.option(
    "--metadata", multiple=True, metavar="KEY=VALUE", help="Node metadata (for node grouping)."
)


@click.group("bootstrap")
def command() -> None:
    """Print a bootstrap that points an Envoy or a gRPC application at xdscp."""


@command.command("envoy")
@_node_id_option
@_xds_option
@_cluster_option
@_metadata_option
@click.option("--admin-address", default="127.0.0.1", show_default=True)
@click.option("--admin-port", default=9901, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--initial-fetch-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.0, 300.0),
    help="Seconds Envoy waits for CDS/LDS before starting without them.",
)
@click.option(
    "--delta/--sotw",
    default=False,
    show_default=True,
    help="Incremental xDS (DELTA_GRPC) or state of the world (GRPC).",
)
@click.option(
    "--load-reporting/--no-load-reporting",
    default=True,
    show_default=True,
    help="Report load (LRS) to xdscp: the measured split beside the predicted one.",
)
@_client_options
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json")
def envoy(  # noqa: PLR0917 - one parameter per command-line option
    node_id: str,
    xds: tuple[str, ...],
    node_cluster: str,
    metadata: tuple[str, ...],
    admin_address: str,
    admin_port: int,
    initial_fetch_timeout: float,
    delta: bool,
    load_reporting: bool,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    locality: str | None,
    fmt: str,
) -> None:
    """An Envoy bootstrap using xdscp's ADS for clusters, endpoints, listeners and routes."""
    options = EnvoyBootstrapOptions(
        node_id=node_id,
        servers=_servers(xds),
        node_cluster=node_cluster,
        admin_address=admin_address,
        admin_port=admin_port,
        initial_fetch_timeout_s=initial_fetch_timeout,
        node_metadata=key_values(metadata),
        delta=delta,
        tls=_tls(tls_ca, tls_cert, tls_key),
        locality=_locality(locality),
        load_reporting=load_reporting,
    )
    _emit(envoy_bootstrap(options), fmt)


@command.command("grpc")
@_node_id_option
@_xds_option
@_cluster_option
@_metadata_option
@_client_options
def grpc(  # noqa: PLR0917 - one parameter per command-line option
    node_id: str,
    xds: tuple[str, ...],
    node_cluster: str,
    metadata: tuple[str, ...],
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    locality: str | None,
) -> None:
    """A gRPC xDS bootstrap: save it and point GRPC_XDS_BOOTSTRAP at the file."""
    document = grpc_bootstrap(
        node_id,
        _servers(xds),
        node_cluster=node_cluster,
        node_metadata=key_values(metadata),
        tls=_tls(tls_ca, tls_cert, tls_key),
        locality=_locality(locality),
    )
    _emit(document, "json")
