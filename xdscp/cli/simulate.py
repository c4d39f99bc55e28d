"""`xdscp simulate`: predict how Envoy or gRPC spreads requests over endpoints.

The service given by flags (or a YAML file) is translated into the Cluster and
ClusterLoadAssignment a proxy would receive, the reference balancer for the chosen client is
built from them, and N requests are sent through it. For hash-based policies the output also
shows how many request hashes move when one endpoint is added or removed, next to the classic
`hash(ip) mod n`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from xdscp.balancer import (
    Resources,
    SimulationResult,
    remap_fractions,
    simulate,
)
from xdscp.errors import BalancerError, ValidationError
from xdscp.model import (
    BalancingPolicy,
    Endpoint,
    HashOn,
    LbPolicy,
    Locality,
    Service,
    parse_host_port,
    parse_lb_policy,
)
from xdscp.translate import (
    cluster_for,
    grpc_cluster,
    grpc_load_assignment,
    grpc_route_configuration,
    load_assignment_for,
)

_BAR_WIDTH = 30


def parse_endpoint(text: str) -> Endpoint:
    """`IP:PORT[:WEIGHT[:ZONE[:PRIORITY]]]`; IPv6 as `[addr]:PORT[:...]`."""
    bracket = text.find("]") + 1 if text.startswith("[") else 0  # the host's end, if bracketed
    host, *parts = text[bracket:].split(":")
    if not 1 <= len(parts) <= 4:
        raise ValidationError(
            "endpoint", f"expected IP:PORT[:WEIGHT[:ZONE[:PRIORITY]]], got {text!r}"
        )
    address, port = parse_host_port(f"{text[:bracket]}{host}:{parts[0]}", field="endpoint")
    try:
        weight = int(parts[1]) if len(parts) > 1 else 1
        priority = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        raise ValidationError(
            "endpoint", f"weight and priority must be integers: {text!r}"
        ) from None
    zone = parts[2] if len(parts) > 2 else ""
    return Endpoint(address, port, weight=weight, locality=Locality(zone=zone), priority=priority)


def _endpoint_from_yaml(item: object) -> Endpoint:
    if isinstance(item, str):
        return parse_endpoint(item)
    if not isinstance(item, dict):
        raise ValidationError("endpoints", f"each endpoint is a string or a mapping, got {item!r}")
    fields = dict(item)
    zone = fields.pop("zone", "")
    region = fields.pop("region", "")
    if zone or region:
        fields["locality"] = Locality(region=str(region), zone=str(zone))
    try:
        return Endpoint(**fields)
    except TypeError as exc:
        raise ValidationError("endpoints", str(exc)) from None


def load_file(path: Path) -> dict[str, Any]:
    """Read a simulation file: `policy` (a name or a mapping of BalancingPolicy fields),
    `endpoints`, and optionally `hash_on`, `requests`, `client`, `seed`."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValidationError("file", f"{path} must hold a mapping")
    return document


def _policy(spec: object, hash_on: tuple[str, ...]) -> BalancingPolicy:
    fields: dict[str, Any] = dict(spec) if isinstance(spec, dict) else {"lb": spec or "round_robin"}
    fields["lb"] = parse_lb_policy(fields.get("lb", "round_robin"))
    names = list(hash_on) or list(fields.pop("hash_on", []) or [])
    fields["hash_on"] = tuple(HashOn.parse(str(n)) for n in names)
    return BalancingPolicy(**fields)


def build_service(
    document: dict[str, Any],
    *,
    policy: str | None,
    endpoints: tuple[str, ...],
    hash_on: tuple[str, ...],
) -> Service:
    """The model Service described by the file document with the command-line flags on top."""
    spec = policy if policy is not None else document.get("policy", "round_robin")
    if hash_on == () and "hash_on" in document:
        hash_on = tuple(str(h) for h in document["hash_on"])
    items = [parse_endpoint(e) for e in endpoints] or [
        _endpoint_from_yaml(e) for e in document.get("endpoints", [])
    ]
    if not items:
        raise ValidationError("endpoint", "give at least one --endpoint (or endpoints: in --file)")
    return Service("simulated", tuple(items), _policy(spec, hash_on))


def translation(client: str = "envoy") -> Resources:
    """The Cluster and ClusterLoadAssignment `client` receives for a service."""

    def resources(service: Service) -> tuple[Any, Any]:
        if client == "grpc":
            return grpc_cluster(service), grpc_load_assignment(service)
        return cluster_for(service), load_assignment_for(service)

    return resources


def route_hash_policies(service: Service, client: str) -> Sequence[Any]:
    """The route's hash policies: gRPC clients read them there (Envoy's are in CDS)."""
    if client != "grpc":
        return ()
    return list(grpc_route_configuration(service).virtual_hosts[0].routes[0].route.hash_policy)


def render(result: SimulationResult, title: str) -> Table:
    """A rich table: requests, share, expected weight share and a bar per endpoint."""
    table = Table(title=title)
    for name, justify in (("endpoint", "left"), ("requests", "right"), ("share %", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("weight share %", justify="right")
    table.add_column("", justify="left")
    for row in result.endpoints:
        bar = "█" * round(row.share * _BAR_WIDTH)
        table.add_row(
            row.key,
            str(row.requests),
            f"{100 * row.share:.1f}",
            f"{100 * row.weight_share:.1f}",
            bar,
        )
    if result.unserved:
        table.add_row(
            "(no host)",
            str(result.unserved),
            f"{100 * result.unserved / result.requests:.1f}",
            "",
            "",
        )
    return table


def _remap_table(fractions: dict[str, tuple[float, float]], policy: LbPolicy) -> Table:
    table = Table(title="keys that move to another endpoint")
    table.add_column("balancer")
    table.add_column("one endpoint added", justify="right")
    table.add_column("one endpoint removed", justify="right")
    for name, (added, removed) in fractions.items():
        label = str(policy) if name == "policy" else "hash(ip) mod n"
        table.add_row(label, f"{100 * added:.1f} %", f"{100 * removed:.1f} %")
    return table


@click.command("simulate")
@click.option("--policy", help="Balancing policy: " + ", ".join(p.value for p in LbPolicy) + ".")
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="IP:PORT[:WEIGHT[:ZONE[:PRIORITY]]]",
    help="An endpoint (repeat); IPv6 as [addr]:PORT...",
)
@click.option(
    "--hash-on",
    "hash_on",
    multiple=True,
    metavar="SOURCE[:NAME]",
    help="Request hash input (repeat): header:NAME, cookie:NAME, query_parameter:NAME, source_ip.",
)
@click.option(
    "--requests", type=click.IntRange(1, 10_000_000), default=None, help="Requests [10000]."
)
@click.option(
    "--client", type=click.Choice(["envoy", "grpc"]), default=None, help="Client [envoy]."
)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML with policy, hash_on, endpoints, requests, client, seed (flags override it).",
)
@click.option("--seed", type=int, default=None, help="Seed for a reproducible run.")
def command(
    *,
    policy: str | None,
    endpoints: tuple[str, ...],
    hash_on: tuple[str, ...],
    requests: int | None,
    client: str | None,
    file_: Path | None,
    seed: int | None,
) -> None:
    """Predict the share of requests each endpoint receives under a policy."""
    try:
        document = load_file(file_) if file_ is not None else {}
        service = build_service(document, policy=policy, endpoints=endpoints, hash_on=hash_on)
        count = requests if requests is not None else int(document.get("requests", 10_000))
        client_name = client or str(document.get("client", "envoy"))
        seed = seed if seed is not None else document.get("seed")
        resources = translation(client_name)
        result = simulate(
            service,
            resources,
            requests=count,
            client=client_name,
            seed=seed,
            route_policies=route_hash_policies(service, client_name),
        )
        fractions = None
        if service.policy.is_hashing and len(service.endpoints) > 1:
            fractions = dict(remap_fractions(service, resources, client=client_name))
    except (ValidationError, BalancerError) as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    title = f"{service.policy.lb} on {client_name}, {count} requests"
    console.print(render(result, title))
    if fractions is not None:
        console.print(_remap_table(fractions, service.policy.lb))
