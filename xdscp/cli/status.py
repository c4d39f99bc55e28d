"""`xdscp status`: what each connected proxy and gRPC client has accepted, as a table, and
each endpoint's measured load (the clients' LRS reports) beside its predicted share.

Reads the admin JSON (`/debug/nodes`, `/api/services`), not CSDS: see `xdscp.cli.nodes` for
why."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from xdscp.cache import RESOURCE_TYPES
from xdscp.cli.admin_http import admin_get
from xdscp.cli.nodes import ADMIN

_TYPES = tuple((t.short_name, t.api) for t in RESOURCE_TYPES.values())


def fetch_nodes(admin: str) -> list[dict[str, Any]]:
    """The running server's /debug/nodes (one-line errors: `xdscp.cli.admin_http`)."""
    return list(admin_get(admin, "/debug/nodes"))


def _cell(types: dict[str, Any], name: str) -> str:
    state = types.get(name)
    if state is None:
        return "-"
    mark = "[green]✓[/green]" if state["in_sync"] else "[red]✗[/red]"
    return f"{mark} {state['acked_version'][:8] or 'none'}"


def render(nodes: list[dict[str, Any]]) -> Table:
    """One row per stream: node, client, group, accepted version per type, last NACK."""
    table = Table(title=f"{len(nodes)} connected stream(s)")
    for header in (
        "node",
        "client",
        "group",
        "since",
        *(short for _, short in _TYPES),
        "NACKs",
        "last NACK",
    ):
        table.add_column(header)
    for node in nodes:
        nacks = node.get("last_nack") or {}
        nack = "; ".join(f"{t}: {v['error'][:60]}" for t, v in nacks.items()) or "-"
        table.add_row(
            node["node"], node["client"], node["group"], node["connected_since"],
            *(_cell(node["types"], name) for name, _ in _TYPES),
            str(len(node.get("nacks", []))), nack,
        )  # fmt: skip
    return table


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def render_load(services: list[dict[str, Any]]) -> Table | str:
    """One row per endpoint of each service with reported load: the weight served, the
    reference balancers' predicted share, the measured share and requests per second; the
    caption says each service's client kinds, whose predictions are mixed by their load."""
    reported = [s for s in services if (s.get("load") or {}).get("rps") is not None]
    if not reported:
        return f"no load reported yet for any of {len(services)} service(s)"
    table = Table(title=f"measured load of {len(reported)} of {len(services)} service(s)")
    for header in ("service", "endpoint", "weight", "predicted", "measured", "rps"):
        table.add_column(header, justify="left" if header in {"service", "endpoint"} else "right")
    for service in reported:
        for e in service["endpoints"]:
            table.add_row(
                service["name"], e["key"], str(e["weight"]), _share(e.get("predicted_share")),
                _share(e.get("measured_share")), f"{e.get('measured_rps') or 0:.1f}",
            )  # fmt: skip
    by = [f"{s['name']} ({_kinds(s['load'].get('predicted_by'))})" for s in reported]
    table.caption = "predicted for the clients that reported: " + "; ".join(by)
    return table


def _kinds(predicted_by: Any) -> str:
    """Each client kind's fraction of the load (`envoy 25.0 %, grpc 75.0 %`); a plane that
    gives one kind's name only (before the mix) is that kind alone."""
    if isinstance(predicted_by, str):
        return f"{predicted_by} 100.0 %"
    if not isinstance(predicted_by, dict) or not predicted_by:
        return "-"
    return ", ".join(f"{kind} {_share(fraction)}" for kind, fraction in predicted_by.items())


@click.command("status")
@ADMIN
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON instead of a table.")
def command(admin: str, as_json: bool) -> None:
    """Show every connected node: accepted versions per type (✓ = in sync), last NACK; then
    each reporting service's endpoints: weight, predicted share, measured share and rps.
    `--json`: the nodes only (the measured load is in `/api/services`)."""
    nodes = fetch_nodes(admin)
    if as_json:
        click.echo(json.dumps(nodes, indent=2))
        return
    services = list(admin_get(admin, "/api/services")["services"])
    console = Console(width=160)
    console.print(render(nodes))
    console.print(render_load(services))
