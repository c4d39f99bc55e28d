"""`xdscp route set / get / delete`: a service's routes in etcd (`/xdscp/routes/<service>`).

`route set SERVICE --file routes.yaml` stores the list the file holds (a YAML or JSON list of
routes, or a mapping with a `routes:` list); `--json '[...]'` gives it inline; `--split
web=90,web-v2=10` is the canary shorthand: one route sending every request to the split. The
table is validated first (a bad one is refused with the field at fault, and nothing is
written); a target with no registered endpoint gets a warning line (the route leaves it out
until it registers).
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from xdscp.cli.registry import etcd_config, etcd_options
from xdscp.errors import ValidationError, XdscpError
from xdscp.etcd import EtcdClient
from xdscp.model import Route, RouteTable, check_service_name
from xdscp.registry import (
    DEFAULT_ROUTES_PREFIX,
    delete_routes,
    get_routes,
    routes_value,
    set_routes,
)

T = TypeVar("T")
_prefix_option = click.option(
    "--routes-prefix", default=DEFAULT_ROUTES_PREFIX, show_default=True, metavar="PREFIX"
)


def _run(work: Callable[[EtcdClient], Awaitable[T]], params: dict[str, Any]) -> T:
    config = etcd_config(params)

    async def main() -> T:
        async with EtcdClient(config) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None


def _service(name: str) -> str:
    try:
        return check_service_name(name)
    except ValidationError as exc:
        raise click.BadParameter(exc.message, param_hint="SERVICE") from None


def parse_split(text: str) -> RouteTable:
    """`web=90,web-v2=10` as a table of one route sending every request to that split."""
    pairs: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        name, sep, weight = part.partition("=")
        if not sep or not weight.strip().isdigit():
            raise ValidationError("split", f"expects SERVICE=WEIGHT,..., got {part!r}")
        pairs.append((name.strip(), int(weight)))
    return RouteTable((Route(split=tuple(pairs)),))


def table_from_text(text: str, origin: str) -> RouteTable:
    """The route table of a YAML / JSON document: a list of routes, or `{routes: [...]}`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError("routes", f"{origin} is not YAML or JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"routes"}:
        data = data["routes"]
    return RouteTable.from_list(data)


def _table(params: dict[str, Any]) -> RouteTable:
    given = [k for k in ("file", "json_text", "split") if params[k] is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --file, --json, --split")
    try:
        if params["file"] is not None:
            return table_from_text(Path(params["file"]).read_text(), params["file"])
        if params["json_text"] is not None:
            return table_from_text(params["json_text"], "--json")
        return parse_split(params["split"])
    except ValidationError as exc:
        raise click.UsageError(f"refused, nothing stored: {exc}") from None


async def _unregistered(client: EtcdClient, names: frozenset[str], prefix: str) -> list[str]:
    """The targets with no native registration under `prefix`, each with similar names."""
    kvs, _ = await client.get_prefix(prefix.encode())
    registered = {kv.key.decode(errors="replace").removeprefix(prefix).partition("/")[0]
                  for kv in kvs}  # fmt: skip
    out = []
    for name in sorted(names - registered):
        similar = difflib.get_close_matches(name, sorted(registered), n=3, cutoff=0.6)
        hint = f" (similar registered names: {', '.join(similar)})" if similar else ""
        out.append(
            f"warning: no endpoint of {name!r} is registered under {prefix}: routes leave it"
            f" out until it registers{hint}"
        )
    return out


@click.group("route")
def route_group() -> None:
    """A service's routes: matches (path, headers, gRPC method), splits, faults."""


@route_group.command("set")
@click.argument("service")
@click.option("--file", type=click.Path(exists=True, dir_okay=False), help="YAML/JSON routes.")
@click.option("--json", "json_text", metavar="JSON", help="The routes inline (a JSON list).")
@click.option("--split", metavar="SVC=W,...", help="One route: every request to this split.")
@_prefix_option
@etcd_options
def route_set(**params: Any) -> None:
    """Store SERVICE's routes (replacing any), e.g. `--split web=90,web-v2=10`."""
    service = _service(params.pop("service"))
    table = _table(params)
    prefix, services_prefix = params.pop("routes_prefix"), params["services_prefix"]

    async def work(client: EtcdClient) -> tuple[str, list[str]]:
        key = await set_routes(client, service, table, prefix)
        return key, await _unregistered(client, table.targets - {service}, services_prefix)

    key, warnings = _run(work, params)
    click.echo(f"{key} = {routes_value(table).decode()}")
    for line in warnings:
        click.echo(line, err=True)


@route_group.command("get")
@click.argument("service")
@_prefix_option
@etcd_options
def route_get(**params: Any) -> None:
    """Print SERVICE's stored routes as JSON (none stored: every request to SERVICE)."""
    service = _service(params.pop("service"))
    prefix = params.pop("routes_prefix")
    table = _run(functools.partial(get_routes, service=service, routes_prefix=prefix), params)
    routes = table.to_list() if table is not None else None
    click.echo(json.dumps({"service": service, "stored": table is not None, "routes": routes},
                          indent=2))  # fmt: skip


@route_group.command("delete")
@click.argument("service")
@_prefix_option
@etcd_options
def route_delete(**params: Any) -> None:
    """Delete SERVICE's routes: every request goes to SERVICE again."""
    service = _service(params.pop("service"))
    prefix = params.pop("routes_prefix")
    key = _run(functools.partial(delete_routes, service=service, routes_prefix=prefix), params)
    if key is None:
        raise click.ClickException(f"{service} has no stored routes")
    click.echo(f"deleted {key}: every request to {service} goes to {service} again")


commands: list[click.Command] = [route_group]
"""The commands this module adds to `xdscp`."""
