"""`xdscp simulate` for a service with routes: the request (`--path`, `--header`) and the
tables of the route it takes, its clusters and their endpoints."""

from __future__ import annotations

import json
import re

from rich.console import Console
from rich.table import Table

from xdscp.balancer.route_simulation import RoutePrediction
from xdscp.errors import ValidationError
from xdscp.model import Route

_PRINTABLE = re.compile(r"[\x20-\x7e]*")
Request = tuple[str, dict[str, str]]


def parse_request(path: str | None, headers: tuple[str, ...]) -> Request:
    """The request's path (default `/`) and headers (`NAME=VALUE`, names in lower case)."""
    path = "/" if path is None else path
    if not path.startswith("/") or not _PRINTABLE.fullmatch(path):
        raise ValidationError("path", f"must be printable ASCII starting with '/', got {path!r}")
    named: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValidationError("header", f"expected NAME=VALUE, got {item!r}")
        named[name.strip().lower()] = value
    return path, named


def describe(route: Route) -> str:
    """A route in one line: its match (the mapping form; `{}`: every request) → target."""
    match = json.dumps(route.match.to_mapping(), separators=(",", ":"))
    if route.cluster is not None:
        return f"{match} → {route.cluster}"
    return f"{match} → " + ", ".join(f"{name} {weight}" for name, weight in route.split)


def _clusters_table(prediction: RoutePrediction) -> Table:
    table = Table(title="clusters")
    for name in ("cluster", "weight", "share %"):
        table.add_column(name, justify="left" if name == "cluster" else "right")
    route = prediction.split.route
    weights = dict(route.split) if route is not None and route.split else {}
    for name, share in prediction.split.clusters.items():
        table.add_row(name, str(weights.get(name, "-")), f"{100 * share:.1f}")
    return table


def _endpoints_table(prediction: RoutePrediction, requests: int) -> Table:
    table = Table(title=f"endpoints ({requests} requests per cluster)")
    for name in ("cluster", "endpoint", "in cluster %", "of route %"):
        table.add_column(name, justify="left" if name in {"cluster", "endpoint"} else "right")
    for cluster, shares in prediction.split.endpoints.items():
        result = prediction.results[cluster]
        for row in result.endpoints:
            table.add_row(
                cluster, row.key, f"{100 * row.share:.1f}", f"{100 * shares[row.key]:.1f}"
            )
        if result.unserved:
            part = result.unserved / result.requests
            share = prediction.split.clusters[cluster] * part
            table.add_row(cluster, "(no host)", f"{100 * part:.1f}", f"{100 * share:.1f}")
    return table


def print_routes(prediction: RoutePrediction, console: Console, request: Request) -> None:
    """The route the request takes, its clusters' shares and its endpoints' shares."""
    path, headers = request
    asked = " ".join([path, *(f"{k}={v}" for k, v in headers.items())])
    for note in prediction.notes:
        console.print(note, markup=False)
    split = prediction.split
    if split.index is None or split.route is None:
        console.print(
            f"request {asked}: no route matches (Envoy answers 404, gRPC clients UNAVAILABLE)",
            markup=False,
        )
        return
    console.print(
        f"request {asked}: routes[{split.index}] of {len(prediction.served)} served:"
        f" {describe(split.route)}",
        markup=False,
    )
    console.print(_clusters_table(prediction))
    requests = next(iter(prediction.results.values())).requests
    console.print(_endpoints_table(prediction, requests))
