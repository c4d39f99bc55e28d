"""`xdscp simulate`: predict how Envoy or gRPC spreads requests over endpoints.

The service given by flags (or a YAML file) is translated into the Cluster and
ClusterLoadAssignment a proxy would receive, the reference balancer for the chosen client is
built from them, and N requests are sent through it. For hash-based policies the output also
shows how many request hashes move when one endpoint is added or removed, next to the classic
`hash(ip) mod n`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from xdscp.balancer import (
    Conditions,
    HotKeyResult,
    SimulationResult,
    remap_fractions,
    simulate,
    simulate_hot_key,
)
from xdscp.balancer.capacity import converged_service
from xdscp.balancer.route_simulation import simulate_routes
from xdscp.cli.simulate_orca import (
    NO_CAPACITY,
    capacities,
    convergence_note,
    parse_capacity,
)
from xdscp.cli.simulate_routes import parse_request, print_routes
from xdscp.errors import BalancerError, ConfigError, ValidationError
from xdscp.model import (
    BalancingPolicy,
    ClientKind,
    Endpoint,
    HashOn,
    Health,
    LbPolicy,
    Locality,
    Service,
    check_int,
    parse_health,
    parse_host_port,
    parse_lb_policy,
)
from xdscp.sources.located import FieldPath, Located, parse_yaml
from xdscp.sources.services_doc import endpoint_section, policy_section, services_section
from xdscp.translate import client_resources, route_hash_policies

_BAR_WIDTH = 30
T = TypeVar("T")


def parse_endpoint(text: str) -> Endpoint:
    """`IP:PORT[:WEIGHT[:ZONE[:PRIORITY[:HEALTH]]]]`; IPv6 as `[addr]:PORT[:...]`."""
    bracket = text.find("]") + 1 if text.startswith("[") else 0  # the host's end, if bracketed
    host, *parts = text[bracket:].split(":")
    if not 1 <= len(parts) <= 5:
        raise ValidationError(
            "endpoint", f"expected IP:PORT[:WEIGHT[:ZONE[:PRIORITY[:HEALTH]]]], got {text!r}"
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
    health = parse_health(parts[4]) if len(parts) > 4 else Health.HEALTHY
    return Endpoint(
        address, port, weight=weight, locality=Locality(zone=zone), priority=priority,
        health=health,
    )  # fmt: skip


_FILE_KEYS = (
    "policy", "hash_on", "endpoints", "requests", "client", "seed", "added", "services",
    "capacities",
)  # fmt: skip


def load_file(path: Path, service: str | None = None) -> dict[str, Any]:
    """Read a simulation file strictly, every error at its line: `policy` (a name or a
    policy mapping, as `xdscp policy set` stores it), `endpoints` (as in the services file,
    or `IP:PORT:...` strings), and optionally `hash_on`, `requests`, `client`, `seed`,
    `added` (`ip:port: seconds`), `capacities` (`ip:port: requests/s`, for
    client_side_weighted_round_robin). A services file (`services:`) works too: the service is
    the only one, or `service` (`--service`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    located = parse_yaml(text, str(path))
    data = located.mapping((), _FILE_KEYS)
    document: dict[str, Any] = {"hash_on": located.strings(("hash_on",)) or ()}
    for index in range(len(document["hash_on"])):
        _located(located, ("hash_on", index), lambda text: HashOn.parse(str(text)))
    if "services" in data:
        document["_services"] = services_section(located, ("services",))
        document["_service"] = _pick(document["_services"], service)
    if isinstance(data.get("policy"), dict):
        document["policy"] = policy_section(located, ("policy",))
    elif data.get("policy") is not None:
        document["policy"] = _located(located, ("policy",), parse_lb_policy)
    count = len(located.sequence(("endpoints",)))
    document["endpoints"] = [_file_endpoint(located, ("endpoints", i)) for i in range(count)]
    for key, low in (("requests", 1), ("seed", 0)):
        if data.get(key) is not None:
            document[key] = _located(located, (key,), partial(check_int, key, low=low, high=2**32))
    if data.get("client") is not None:
        document["client"] = _located(located, ("client",), _client)
    added = located.mapping(("added",))
    document["added"] = {str(k): _located(located, ("added", k), _seconds) for k in added}
    given = located.mapping(("capacities",))
    document["capacities"] = {
        str(k): _located(located, ("capacities", k), parse_capacity) for k in given
    }
    return document


def _located(located: Located, path: FieldPath, parse: Callable[[Any], T]) -> T:
    """`parse(value)`, its `ValidationError` located at the value's line."""
    try:
        return parse(located.get(path))
    except ValidationError as exc:
        raise located.error(path, exc.message) from None


def _client(value: object) -> ClientKind:
    if not isinstance(value, str) or value not in set(ClientKind):
        raise ValidationError("client", f"must be envoy or grpc, got {value!r}")
    return ClientKind(value)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValidationError("added", f"must be seconds >= 0, got {value!r}")
    return float(value)


def _file_endpoint(located: Located, path: FieldPath) -> Endpoint:
    """A shorthand string, or a mapping written as in the services file and the registry."""
    item = located.get(path)
    if isinstance(item, str):
        return _located(located, path, parse_endpoint)
    if not isinstance(item, dict):
        raise located.error(path, f"must be IP:PORT[:...] or a mapping, got {item!r}")
    return endpoint_section(located, path)


def _pick(services: dict[str, Service], name: str | None) -> Service:
    """The one service of a services file, or the one `--service` names."""
    if name is None and len(services) != 1:
        raise ValidationError(
            "service", f"the file holds {sorted(services)}: pick one with --service"
        )
    key = name or next(iter(services))
    if key not in services:
        raise ValidationError("service", f"{key!r} is not in the file ({sorted(services)})")
    return services[key]


def _policy(spec: object, hash_on: tuple[str, ...]) -> BalancingPolicy:
    policy = spec if isinstance(spec, BalancingPolicy) else BalancingPolicy(
        lb=parse_lb_policy(spec or "round_robin")
    )  # fmt: skip
    if hash_on:
        policy = replace(policy, hash_on=tuple(HashOn.parse(str(n)) for n in hash_on))
    return policy


def build_service(
    document: dict[str, Any],
    *,
    policy: str | None,
    endpoints: tuple[str, ...],
    hash_on: tuple[str, ...],
) -> Service:
    """The model Service described by the file document with the command-line flags on top."""
    given: Service | None = document.get("_service")
    spec = policy if policy is not None else (given.policy if given else document.get("policy"))
    hash_on = hash_on or tuple(document.get("hash_on", ()))
    items = [parse_endpoint(e) for e in endpoints] or (
        list(given.endpoints) if given else list(document.get("endpoints", ()))
    )  # fmt: skip
    if not items:
        raise ValidationError("endpoint", "give at least one --endpoint (or endpoints: in --file)")
    name = given.name if given else "simulated"
    return Service(name, tuple(items), _policy(spec, hash_on), given.routes if given else None)


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


def _added(document: dict[str, Any], flags: tuple[str, ...]) -> dict[str, float]:
    """`ip:port` -> the second it joined, from the file's `added:` and `--added` flags."""
    added: dict[str, float] = dict(document.get("added") or {})
    for flag in flags:
        key, sep, value = flag.rpartition("=")
        if not sep:
            raise ValidationError("added", f"expected IP:PORT=SECONDS, got {flag!r}")
        try:
            added[key] = float(value)
        except ValueError:
            raise ValidationError("added", f"seconds must be a number, got {flag!r}") from None
    return added


def conditions_at(
    service: Service, added: dict[str, float], at: float | None, ejected: tuple[str, ...]
) -> tuple[Service, Conditions]:
    """The service as it stands `at` seconds in (endpoints added later are not there yet)
    and the conditions its balancer runs under (ejected hosts, the others' ages)."""
    keys = {e.key for e in service.endpoints}
    for key in [*added, *ejected]:
        if key not in keys:
            raise ValidationError("endpoint", f"{key} is not an endpoint of the service")
    now = at if at is not None else max([0.0, *added.values()])
    present = tuple(e for e in service.endpoints if added.get(e.key, 0.0) <= now)
    ages = {k: now - t for k, t in added.items() if t <= now}
    return replace(service, endpoints=present), Conditions(frozenset(ejected), ages)


def render_hot_key(result: HotKeyResult, title: str) -> Table:
    """Where one key's requests went and the most each endpoint held at once."""
    table = Table(title=title)
    for name in ("endpoint", "requests", "peak in flight"):
        table.add_column(name, justify="left" if name == "endpoint" else "right")
    for key in sorted(result.requests, key=lambda k: -result.requests[k]):
        table.add_row(key, str(result.requests[key]), str(result.peak_active[key]))
    return table


@click.command("simulate")
@click.option("--policy", help="Balancing policy: " + ", ".join(p.value for p in LbPolicy) + ".")
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="IP:PORT[:WEIGHT[:ZONE[:PRIORITY[:HEALTH]]]]",
    help="An endpoint (repeat); IPv6 as [addr]:PORT...; HEALTH: healthy, degraded, unhealthy,"
    " draining.",
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
    "--client",
    type=click.Choice([str(k) for k in ClientKind]),
    default=None,
    help="Client [envoy].",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML: policy, hash_on, endpoints, requests, client, seed, added; or a services file"
    " (with routes: --path and --header pick the route).",
)
@click.option("--service", "service_name", default=None, help="The service of a services file.")
@click.option("--seed", type=int, default=None, help="Seed for a reproducible run.")
@click.option(
    "--eject", multiple=True, metavar="IP:PORT", help="An endpoint outlier detection ejected."
)
@click.option(
    "--added", multiple=True, metavar="IP:PORT=SECONDS", help="When an endpoint joined (repeat)."
)
@click.option(
    "--at-seconds",
    type=click.FloatRange(0.0),
    default=None,
    help="Simulate at this second: later endpoints are absent, recent ones ramp (slow start).",
)
@click.option(
    "--capacity", "capacity", multiple=True, metavar="IP:PORT=RPS",
    help="client_side_weighted_round_robin: the requests/s an endpoint serves at full"
    " utilization (repeat): the shares the clients converge to, and when.",
)  # fmt: skip
@click.option("--path", default=None, help="The request's path, for the service's routes [/].")
@click.option(
    "--header", "headers", multiple=True, metavar="NAME=VALUE",
    help="A request header, for the service's routes (repeat).",
)  # fmt: skip
@click.option("--hot-key", default=None, help="Send every request with this hash key.")
@click.option(
    "--hash-balance-factor", type=click.IntRange(100), default=None,
    help="Bounded-load hashing (ring_hash, maglev): a host holds at most FACTOR % of the average.",
)  # fmt: skip
@click.option(
    "--concurrency", type=click.IntRange(1, 100_000), default=16, show_default=True,
    help="Requests in flight at once with --hot-key.",
)  # fmt: skip
def command(**params: Any) -> None:
    """Predict the share of requests each endpoint receives under a policy."""
    console = Console()
    try:
        file_ = params["file_"]
        document = load_file(file_, params["service_name"]) if file_ is not None else {}
        _run(document, params, console)
    except (ValidationError, ConfigError, BalancerError) as exc:
        raise click.ClickException(str(exc)) from None


def _run(document: dict[str, Any], params: dict[str, Any], console: Console) -> None:
    service = build_service(
        document, policy=params["policy"], endpoints=params["endpoints"],
        hash_on=params["hash_on"],
    )  # fmt: skip
    if params["hash_balance_factor"] is not None:
        policy = replace(service.policy, hash_balance_factor=params["hash_balance_factor"])
        service = replace(service, policy=policy)
    service, conditions = conditions_at(
        service, _added(document, params["added"]), params["at_seconds"], params["eject"]
    )
    count = params["requests"] or int(document.get("requests", 10_000))
    client = ClientKind(params["client"] or document.get("client", ClientKind.ENVOY))
    seed = params["seed"] if params["seed"] is not None else document.get("seed")
    resources = client_resources(client)
    options: dict[str, Any] = {
        "client": client, "seed": seed, "conditions": conditions,
        "route_policies": route_hash_policies(service, client),
    }  # fmt: skip
    if service.routes is not None or params["path"] is not None or params["headers"]:
        if params["hot_key"] is not None:
            raise ValidationError("hot-key", "is for a service without routes (give its cluster)")
        request = parse_request(params["path"], params["headers"])
        prediction = simulate_routes(
            service, document.get("_services") or {}, path=request[0], headers=request[1],
            requests=count, client=client, seed=seed, conditions=conditions,
        )  # fmt: skip
        print_routes(prediction, console, request)
        return
    if params["hot_key"] is not None:
        hot = simulate_hot_key(
            service, resources, key=params["hot_key"], concurrency=params["concurrency"],
            requests=count, **options,
        )  # fmt: skip
        title = f"key {params['hot_key']!r}, {params['concurrency']} in flight, {client}"
        console.print(render_hot_key(hot, title))
        return
    title = f"{service.policy.lb} on {client}, {count} requests"
    note = None
    if service.policy.lb is LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN:
        capacity = capacities(document, params["capacity"])
        note = convergence_note(service.policy, capacity) if capacity else NO_CAPACITY
        if capacity:
            service = converged_service(service, capacity, client)
            title = f"{title}, converged"
    result = simulate(service, resources, requests=count, **options)
    console.print(render(result, title))
    if note is not None:
        console.print(note)
    if service.policy.is_hashing and len(service.endpoints) > 1:
        fractions = dict(remap_fractions(service, resources, client=client))
        console.print(_remap_table(fractions, service.policy.lb))
