"""`xdscp register`, `deregister`, `list` and `policy`: the registry in etcd, from a shell.

Every command takes `--etcd URL` (repeatable; `XDSCP_ETCD` holds a comma-separated default) and
the TLS / auth flags. The lead registers `commands` on the main group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from xdscp.cli.params import key_values
from xdscp.cli.policy_edit import MissingLbError, PolicyWrite, changes, delete_policy, set_merged
from xdscp.cli.policy_flags import flag_error, policy_patch, resilience_options
from xdscp.cli.registrar import RegistrarOptions, load_options, load_refresh, run_registrar
from xdscp.errors import ValidationError, XdscpError
from xdscp.etcd import EtcdClient, EtcdConfig, WatchEvent, WatchEventType
from xdscp.model import (
    BalancingPolicy,
    HashFunction,
    Health,
    LbPolicy,
    Locality,
    UpstreamProtocol,
    check_service_name,
    format_host_port,
    parse_health,
)
from xdscp.registry import (
    DEFAULT_POLICIES_PREFIX,
    DEFAULT_SERVICES_PREFIX,
    Format,
    GrpcGoTarget,
    Placement,
    Registration,
    RegistryLayout,
    RegistryState,
    Rejection,
    build_registration,
    deregister,
    get_policy,
    policy_value,
    split_host_port,
)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DRAIN = 5.0  # seconds a stopped registrar stays DRAINING: EDS reaches clients in < 1 s


def etcd_options(func: F) -> F:
    """The etcd connection flags shared by every registry command."""
    options = [
        click.option(
            "--etcd", "etcd_urls", multiple=True, envvar="XDSCP_ETCD",
            help="etcd client URL (repeat for several members) [default: http://127.0.0.1:2379]",
        ),
        click.option("--etcd-ca", type=click.Path(exists=True, dir_okay=False)),
        click.option("--etcd-cert", type=click.Path(exists=True, dir_okay=False)),
        click.option("--etcd-key", type=click.Path(exists=True, dir_okay=False)),
        click.option("--etcd-user", envvar="XDSCP_ETCD_USER"),
        click.option("--etcd-password", envvar="XDSCP_ETCD_PASSWORD"),
        click.option("--services-prefix", default=DEFAULT_SERVICES_PREFIX, show_default=True),
        click.option("--policies-prefix", default=DEFAULT_POLICIES_PREFIX, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def etcd_config(params: dict[str, Any]) -> EtcdConfig:
    """The EtcdConfig described by the shared etcd flags (they are removed from `params`)."""
    urls = [u for text in params.pop("etcd_urls") for u in text.split(",") if u.strip()]
    settings: dict[str, Any] = {
        "ca_file": params.pop("etcd_ca"),
        "cert_file": params.pop("etcd_cert"),
        "key_file": params.pop("etcd_key"),
        "username": params.pop("etcd_user"),
        "password": params.pop("etcd_password"),
    }
    if urls:
        settings["endpoints"] = tuple(urls)
    return EtcdConfig(**settings)


T = TypeVar("T")


def _run(work: Callable[[EtcdClient], Awaitable[T]], config: EtcdConfig) -> T:
    async def main() -> T:
        async with EtcdClient(config) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None


def _registration(params: dict[str, Any]) -> Registration:
    """The registration the flags describe; a bad value is a usage error naming it."""
    try:
        host, port = split_host_port("address", params["address"])
        return build_registration(
            params["service"], host, port,
            endpoint_id=params["endpoint_id"], weight=params["weight"],
            locality=Locality(params["region"], params["zone"], params["sub_zone"]),
            priority=params["priority"], health=parse_health(params["health"]),
            metadata=key_values(params["metadata"]), hash_key=params["hash_key"],
        )  # fmt: skip
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("register")
@click.argument("service")
@click.argument("address", metavar="HOST:PORT")
@click.option("--weight", type=int, default=1, show_default=True)
@click.option("--region", default="")
@click.option("--zone", default="")
@click.option("--sub-zone", default="")
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--health", type=click.Choice([h.value for h in Health]), default="healthy")
@click.option("--metadata", multiple=True, metavar="KEY=VALUE")
@click.option("--hash-key", default=None, help="Endpoint hash key (ring hash / Maglev).")
@click.option("--ttl", type=int, default=10, show_default=True, help="Lease TTL in seconds.")
@click.option("--id", "endpoint_id", default=None, help="Endpoint id [default: HOST:PORT].")
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="native")
@click.option("--grpc-target", default=None, help="grpc-go format: target [default: SERVICE].")
@click.option(
    "--drain", type=click.FloatRange(0.0, 3600.0), default=None, metavar="SECONDS",
    help="On SIGINT/SIGTERM, mark DRAINING this long before revoking [5 native, 0 grpc-go].",
)  # fmt: skip
@load_options
@etcd_options
def register_command(**params: Any) -> None:
    """Register SERVICE at HOST:PORT until interrupted: SIGINT/SIGTERM mark the endpoint
    DRAINING for --drain seconds, then revoke the lease (a second signal revokes at once).
    The key is never overwritten: a key someone else holds is refused (exit status 3). A
    registrar whose key is deleted by someone else (`xdscp deregister`) stops (status 0)."""
    config = etcd_config(params)
    registration = _registration(params)
    refresh = load_refresh(params)
    if refresh is not None:  # the registration starts with its load
        registration = dataclasses.replace(registration, load=refresh.read())
    placement = Placement(Format(params["fmt"]), params["services_prefix"], params["grpc_target"])
    drain = params["drain"]
    if drain is None:
        drain = DEFAULT_DRAIN if placement.format is Format.NATIVE else 0.0
    undo = ["xdscp", "deregister", registration.service, registration.endpoint_id]
    if placement.format is Format.GRPC_GO:
        undo += ["--format", "grpc-go"]
        undo += ["--grpc-target", placement.grpc_target] if placement.grpc_target else []
    options = RegistrarOptions(
        config, registration, placement, params["ttl"], drain, shlex.join(undo),
        refresh,
    )  # fmt: skip
    run_registrar(options)


@click.command("deregister")
@click.argument("service")
@click.argument("endpoint_id", metavar="ID")
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="native")
@click.option("--grpc-target", default=None)
@click.option(
    "--drain", type=click.FloatRange(0.0, 3600.0), default=0.0, metavar="SECONDS",
    help="Mark the endpoint DRAINING (keeping its lease) this long before deleting it.",
)  # fmt: skip
@etcd_options
def deregister_command(**params: Any) -> None:
    """Delete the registration ID of SERVICE (ID defaults to HOST:PORT at register time);
    with --drain, clients first stop sending it new requests while in-flight ones finish."""
    config = etcd_config(params)
    placement = Placement(Format(params["fmt"]), params["services_prefix"], params["grpc_target"])
    key = placement.key(params["service"], params["endpoint_id"])
    found = _run(
        functools.partial(
            deregister, service=params["service"], endpoint_id=params["endpoint_id"],
            placement=placement, drain=params["drain"],
        ),
        config,
    )  # fmt: skip
    if not found:
        raise click.ClickException(f"{key} is not registered")
    click.echo(f"deregistered {key}")


@dataclass(frozen=True, slots=True)
class Listed:
    """What `xdscp list` shows: the valid registrations with their leases, the rejected keys."""

    registrations: list[tuple[str, Registration]]
    leases: dict[str, tuple[int, int]]  # key -> (lease id, seconds left; -1: gone)
    rejections: list[Rejection]


async def _list(client: EtcdClient, layout: RegistryLayout) -> Listed:
    state = RegistryState(layout)
    prefixes = [(layout.services_prefix, state.apply_native)]
    prefixes += [(t.prefix, functools.partial(state.apply_grpc_go, t)) for t in layout.grpc_targets]
    rejections: list[Rejection] = []
    lease_of: dict[bytes, int] = {}
    for prefix, apply in prefixes:
        kvs, _ = await client.get_prefix(prefix.encode())
        lease_of.update((kv.key, kv.lease) for kv in kvs if kv.lease)
        rejections += apply(
            [WatchEvent(WatchEventType.PUT, kv.key, kv.value, kv.mod_revision) for kv in kvs]
        )
    left = {lease: await client.lease_time_to_live(lease) for lease in set(lease_of.values())}
    leases = {key.decode(errors="replace"): (lease, left[lease]) for key, lease in lease_of.items()}
    return Listed(state.registrations(), leases, rejections)


def _lease_cells(lease: tuple[int, int] | None) -> tuple[str, str]:
    if lease is None:
        return "", "no lease"
    lease_id, seconds = lease
    return f"{lease_id:x}", "expired" if seconds < 0 else f"{seconds} s"


@click.command("list")
@click.argument("service", required=False)
@click.option("--grpc-target", "grpc_targets", multiple=True, metavar="[SERVICE=]TARGET")
@etcd_options
def list_command(**params: Any) -> None:
    """Show the registered endpoints (of one SERVICE, or all) as a table."""
    config = etcd_config(params)
    try:
        targets = tuple(GrpcGoTarget.parse(t) for t in params["grpc_targets"])
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--grpc-target") from None
    layout = RegistryLayout(params["services_prefix"], params["policies_prefix"], targets)
    listed = _run(functools.partial(_list, layout=layout), config)
    table = Table(
        "service", "id", "address", "weight", "locality", "priority", "health", "metadata",
        "lease", "ttl left",
    )  # fmt: skip
    for key, reg in listed.registrations:
        if params["service"] and reg.service != params["service"]:
            continue
        locality = str(reg.locality) if reg.locality != Locality() else ""
        meta = ",".join(f"{k}={v}" for k, v in sorted(reg.metadata.items()))
        address = format_host_port(reg.host, reg.port)
        table.add_row(
            reg.service, reg.endpoint_id, address, str(reg.weight), locality,
            str(reg.priority), str(reg.health), meta, *_lease_cells(listed.leases.get(key)),
        )  # fmt: skip
    console = Console(width=None if sys.stdout.isatty() else 200)  # no wrapping in pipes
    console.print(table)
    for rejection in listed.rejections:
        console.print(
            f"[yellow]skipped[/] {rejection.key}: {rejection.reason}: {rejection.message}"
        )


@click.group("policy")
def policy_group() -> None:
    """Read and write a service's balancing policy (stored in etcd, shared by every replica)."""


@policy_group.command("set")
@click.argument("service")
@click.option(
    "--lb", type=click.Choice([p.value for p in LbPolicy]),
    help="Balancing policy; required for a service without a stored policy (or --replace).",
)  # fmt: skip
@click.option(
    "--replace", is_flag=True,
    help="Replace the whole stored policy (fields not given take their defaults) instead of"
    " changing only the fields given.",
)  # fmt: skip
@click.option("--hash-on", multiple=True, metavar="SOURCE[:NAME]", help="e.g. header:x-user")
@click.option("--hash-function", type=click.Choice([h.value for h in HashFunction]))
@click.option("--min-ring-size", type=int)
@click.option("--max-ring-size", type=int)
@click.option("--maglev-table-size", type=int)
@click.option("--choice-count", type=int)
@click.option("--active-request-bias", type=float)
@click.option("--overprovisioning-factor", type=int)
@click.option("--panic-threshold", type=float)
@click.option("--locality-weighted/--no-locality-weighted", default=None)
@click.option(
    "--upstream-protocol",
    type=click.Choice([p.value for p in UpstreamProtocol]),
    help="how Envoy speaks to the endpoints: http2 for gRPC backends (default http1)",
)
@resilience_options
@etcd_options
def policy_set(**params: Any) -> None:
    """Change SERVICE's stored policy: the flags given are merged into it (`--hash-on
    header:x-user` keeps the stored `--lb`; a part's JSON flag replaces that part), e.g.
    `--lb maglev --hash-on header:x-user`, `--consecutive-5xx 3 --health-check http:/healthz`.
    --replace stores exactly the flags given. Prints what changed."""
    config = etcd_config(params)
    service, replace = params.pop("service"), params.pop("replace")
    prefixes = params.pop("policies_prefix"), params.pop("services_prefix")
    patch = policy_patch(params)
    if patch.empty and not replace:
        raise click.UsageError("give at least one policy flag (see --help)")
    write = _run(
        functools.partial(
            _set_checked, service=service, patch=patch, replace=replace,
            policies_prefix=prefixes[0], services_prefix=prefixes[1],
        ),
        config,
    )  # fmt: skip
    click.echo(f"{write.key} = {policy_value(write.after).decode()}")
    changed = changes(write.before or BalancingPolicy(), write.after)
    what = "changed" if write.before is not None else "set (from the defaults)"
    click.echo(f"{what}: {'; '.join(changed)}" if changed else "unchanged")
    if write.warning:
        click.echo(write.warning, err=True)
    _ejection_note(write.after, service, prefixes[1], config)


def _ejection_note(
    policy: BalancingPolicy, service: str, services_prefix: str, config: EtcdConfig
) -> None:
    """A note (stderr, not an error) when the outlier detection can eject no endpoint of
    those registered now (`OutlierDetection.ejection_note`)."""
    if policy.outlier_detection is None:
        return

    async def count(client: EtcdClient) -> int:
        state = RegistryState(RegistryLayout(services_prefix))
        kvs, _ = await client.get_prefix(f"{services_prefix}{service}/".encode())
        state.apply_native(
            WatchEvent(WatchEventType.PUT, kv.key, kv.value, kv.mod_revision) for kv in kvs
        )
        return sum(1 for _, reg in state.registrations() if reg.service == service)

    note = policy.outlier_detection.ejection_note(_run(count, config))
    if note is not None:
        click.echo(f"note: {service}: {note}", err=True)


async def _set_checked(client: EtcdClient, **kwargs: Any) -> PolicyWrite:
    try:
        return await set_merged(client, **kwargs)
    except MissingLbError as exc:
        raise click.UsageError(exc.message) from None
    except ValidationError as exc:
        raise flag_error(exc) from None


@policy_group.command("delete")
@click.argument("service")
@etcd_options
def policy_delete(**params: Any) -> None:
    """Delete SERVICE's stored policy: the default policy (round robin) applies again."""
    config = etcd_config(params)
    try:
        check_service_name(params["service"])
    except ValidationError as exc:
        raise click.BadParameter(exc.message, param_hint="SERVICE") from None
    key = _run(
        functools.partial(
            delete_policy, service=params["service"], policies_prefix=params["policies_prefix"]
        ),
        config,
    )
    if key is None:
        raise click.ClickException(f"{params['service']} has no stored policy")
    click.echo(f"deleted {key}: {params['service']} has the default policy again")


@policy_group.command("show")
@click.argument("service")
@etcd_options
def policy_show(**params: Any) -> None:
    """Print SERVICE's stored policy as JSON (the default policy when none is stored)."""
    config = etcd_config(params)
    policy = _run(
        functools.partial(
            get_policy, service=params["service"], policies_prefix=params["policies_prefix"]
        ),
        config,
    )
    stored = policy is not None
    data = json.loads(policy_value(policy or BalancingPolicy()))
    click.echo(
        json.dumps({"service": params["service"], "stored": stored, "policy": data}, indent=2)
    )


commands: list[click.Command] = [register_command, deregister_command, list_command, policy_group]
"""The commands this module adds to `xdscp`."""
