"""`xdscp config NODE` and `xdscp nacks [NODE]`: one node's config and the NACK history.

Both read xdscp's admin JSON (`/debug/config_dump`, `/debug/nacks`) rather than CSDS on the
xDS port: the admin port is plain HTTP on loopback by default, while the xDS port may demand
a client certificate (`xds.tls`), and the JSON carries what CSDS has no field for (node group,
client kind) with each resource already decoded. CSDS is there for standard tooling.
"""

from __future__ import annotations

import json

import click
import yaml
from rich.console import Console
from rich.table import Table

from xdscp.cache import RESOURCE_TYPES
from xdscp.cli.admin_http import DEFAULT_ADMIN, admin_get, connected, no_such_node

TYPES = {t.option: t.short_name for t in RESOURCE_TYPES.values()}
ADMIN = click.option(
    "--admin",
    default=DEFAULT_ADMIN,
    show_default=True,
    metavar="HOST:PORT",
    help="xdscp's admin address (serve's --admin; not the xDS port).",
)


@click.command("config")
@click.argument("node")
@click.option("--type", "type_name", type=click.Choice(sorted(TYPES)), help="One type only.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@ADMIN
def config_command(node: str, type_name: str | None, as_json: bool, admin: str) -> None:
    """What NODE was sent and accepted, per resource, decoded (like `istioctl proxy-config`):
    its status (ACKED, NACKED, REQUESTED, DOES_NOT_EXIST), versions, and the configuration
    it runs."""
    query = {"node": node, **({"type": TYPES[type_name]} if type_name else {})}
    if not connected(admin, node):
        raise no_such_node(admin, node)
    dump = admin_get(admin, "/debug/config_dump", **query)
    if as_json:
        click.echo(json.dumps(dump, indent=2))
    else:
        click.echo(yaml.safe_dump(dump, sort_keys=False, allow_unicode=True), nl=False)


@click.command("nacks")
@click.argument("node", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON instead of a table.")
@ADMIN
def nacks_command(node: str | None, as_json: bool, admin: str) -> None:
    """The NACK history of every connected node (or NODE's), oldest first: time, type,
    version, nonce and the client's full error. An unknown NODE is an error naming the
    connected ones."""
    if node is not None and not connected(admin, node):
        raise no_such_node(admin, node)
    history = admin_get(admin, "/debug/nacks", **({"node": node} if node else {}))
    if as_json:
        click.echo(json.dumps(history, indent=2))
        return
    table = Table(title=f"{len(history)} NACK(s)", show_lines=True)
    for header in ("time", "node", "type", "version", "nonce", "error"):
        table.add_column(header, overflow="fold")
    for n in history:
        table.add_row(n["at"], n["node"], n["type"], n["version"], n["nonce"], n["error"])
    Console(width=160).print(table)


commands = (config_command, nacks_command)
