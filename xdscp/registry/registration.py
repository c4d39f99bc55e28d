"""Registering endpoints in etcd: the Python API behind `xdscp register` and friends.

Applications register themselves with an async context manager:

    me = build_registration("api", "10.0.0.7", 8080, weight=2, locality=Locality(zone="a"))
    async with EtcdClient(EtcdConfig(endpoints=("http://etcd:2379",))) as client:
        async with register(client, me, ttl=10) as registered:
            ...  # registered.key stays in etcd while the block runs

The key is attached to a lease kept alive in the background and revoked on exit, so a crashed
process's endpoint vanishes when the TTL runs out. A registration owns its key: it never
overwrites or deletes one it does not hold (see `xdscp.registry.ownership` for the rules).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

import structlog

from xdscp.errors import EtcdError, KeyHeldError, RegistrationError, ValidationError
from xdscp.etcd import EtcdClient, LeaseExpiredError
from xdscp.model import (
    BalancingPolicy,
    Health,
    Locality,
    ReportedLoad,
    RouteTable,
    check_int,
    check_service_name,
)
from xdscp.registry.layout import (
    DEFAULT_POLICIES_PREFIX,
    DEFAULT_ROUTES_PREFIX,
    DEFAULT_SERVICES_PREFIX,
)
from xdscp.registry.ownership import Verdict, claim, ended, watch_over
from xdscp.registry.schema import (
    Registration,
    grpc_go_value,
    native_value,
    parse_grpc_go_value,
    parse_native_value,
    parse_policy,
    parse_routes,
    policy_value,
    routes_value,
)
from xdscp.retry import Backoff

log = structlog.get_logger("xdscp.registration")


class Format(StrEnum):
    """How a registration is written."""

    NATIVE = "native"
    GRPC_GO = "grpc-go"


class Registered:
    """A live registration: its key and value, and the lease carrying it now.

    The registrar updates it as it goes: `lease_id` changes when the lease was lost (an etcd
    outage longer than the TTL) and the key written again under a new one, which `rewrites`
    counts; `end` says why the registration ended on its own while the block ran (the key
    deleted by someone else: KeyRemovedError; held by another lease: KeyHeldError), and
    `wait_ended()` waits for it; `revoked` says, after the block, whether the lease was
    revoked on exit (when it was not, `revoke_error` says why and the key lives until its
    TTL runs out).
    """

    __slots__ = (
        "_ended", "end", "key", "lease_id", "registration", "revoke_error", "revoked",
        "rewrites", "value",
    )  # fmt: skip

    def __init__(self, key: str, value: bytes, lease_id: int, registration: Registration) -> None:
        self.key = key
        self.value = value
        self.lease_id = lease_id
        self.registration = registration
        self.rewrites = 0
        self.revoked = False
        self.revoke_error: str | None = None
        self.end: RegistrationError | None = None
        self._ended = asyncio.Event()

    async def wait_ended(self) -> RegistrationError:
        """Return, once the registration ended on its own, why (the key is not ours)."""
        await self._ended.wait()
        assert self.end is not None  # noqa: S101  # set before the event
        return self.end

    def finish(self, end: RegistrationError) -> None:
        """Record that the registration ended on its own (the registrar calls it)."""
        self.end = end
        self._ended.set()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a registration's key goes."""

    format: Format = Format.NATIVE
    services_prefix: str = DEFAULT_SERVICES_PREFIX
    grpc_target: str | None = None  # grpc-go: the target (defaults to the service name)

    def key(self, service: str, endpoint_id: str) -> str:
        """The etcd key of `endpoint_id` in `service`."""
        if self.format is Format.GRPC_GO:
            return f"{self.grpc_target or service}/{endpoint_id}"
        return f"{self.services_prefix}{service}/{endpoint_id}"


def build_registration(
    service: str,
    host: str,
    port: int,
    *,
    endpoint_id: str | None = None,
    weight: int = 1,
    locality: Locality | None = None,
    priority: int = 0,
    health: Health = Health.HEALTHY,
    metadata: Mapping[str, str] | None = None,
    hash_key: str | None = None,
    load: ReportedLoad | None = None,
) -> Registration:
    """A validated registration (the same checks the registry applies when reading it)."""
    check_service_name(service)
    endpoint_id = endpoint_id or f"{host}:{port}"
    if "/" in endpoint_id or not endpoint_id:
        raise ValidationError("id", f"must be non-empty and contain no '/', got {endpoint_id!r}")
    registration = Registration(
        service, endpoint_id, host, check_int("port", port, 1, 65535), weight,
        locality or Locality(), priority, health, dict(metadata or {}), hash_key, load,
    )  # fmt: skip
    parsed = parse_native_value(service, endpoint_id, native_value(registration))
    if parsed.load_refused is not None:
        raise ValidationError("load", parsed.load_refused)
    return registration


async def report_load(
    client: EtcdClient, done: Registered, placement: Placement, load: ReportedLoad
) -> bool:
    """Write the registration again with `load` (the registrant's own, freshly stamped) under
    its lease; False when the key is gone or held by another lease (nothing is written).

    What the adaptive weights read for backends no client reports on: refresh it more often
    than the policy's `stale_after`, or the endpoint returns to its registered weight.
    """
    if not isinstance(load, ReportedLoad):
        raise ValidationError("load", f"must be a ReportedLoad, got {load!r}")
    registration = replace(done.registration, load=load)
    _, value = encode(registration, placement)
    if not await client.put_if_leased(done.key.encode(), value, lease=done.lease_id):
        return False
    done.registration, done.value = registration, value
    return True


def encode(registration: Registration, placement: Placement) -> tuple[str, bytes]:
    """The key and value to write for `registration`."""
    key = placement.key(registration.service, registration.endpoint_id)
    if placement.format is Format.GRPC_GO:
        value = grpc_go_value(registration)
        parse_grpc_go_value(registration.service, registration.endpoint_id, value)
        return key, value
    return key, native_value(registration)


async def _hold(client: EtcdClient, done: Registered, ttl: int) -> None:
    """Keep the registration for as long as the block runs, whatever etcd does meanwhile,
    until it ends on its own (`done.finish`): the key deleted or taken by someone else.

    When etcd lost the lease (an outage longer than the TTL, a revocation) the key, gone
    with it, is created again under a new lease — unless someone else holds it by then. An
    unexpected error is logged with its traceback and the keeper carries on after a backoff.
    """
    backoff = Backoff(0.1, client.config.max_backoff)
    while True:
        try:
            verdict, holder = await watch_over(client, done.key, done.lease_id, ttl)
            end = ended(done.key, done.lease_id, verdict, holder)
            if end is None and verdict is Verdict.LEASE_LOST:
                log.warning("registration_lease_lost", key=done.key, lease=f"{done.lease_id:x}")
                try:
                    done.lease_id = await claim(client, done.key, done.value, ttl)
                except KeyHeldError as exc:
                    end = exc
                else:
                    done.rewrites += 1
                    log.info("registration_rewritten", key=done.key, lease=f"{done.lease_id:x}")
                    backoff.reset()
            if end is not None:
                log.warning("registration_ended", key=done.key, reason=end.message)
                done.finish(end)
                return
        except Exception:
            log.exception("registration_keeper_error", key=done.key)
            await asyncio.sleep(backoff.next_delay())


async def _revoke(client: EtcdClient, done: Registered) -> None:
    """Revoke the lease (its key goes with it). A lease etcd no longer has (lost in an
    outage and not yet replaced when the block ended) took its key with it: revoked too."""
    try:
        await client.lease_revoke(done.lease_id)
    except LeaseExpiredError:
        pass  # nothing of ours is left in etcd
    except EtcdError as exc:
        done.revoke_error = str(exc)
        log.warning("deregister_failed", key=done.key, error=str(exc))
        return
    done.revoked = True
    if done.end is None:  # else the key was not ours any more: nothing deregistered
        log.info("deregistered", key=done.key)


def draining_value(registration: Registration, placement: Placement) -> bytes:
    """The registration's value with `health: draining` (native format only: the grpc-go
    format carries no health)."""
    require_native_for_drain(placement)
    return native_value(replace(registration, health=Health.DRAINING))


def require_native_for_drain(placement: Placement) -> None:
    """Refuse a drain where the format carries no health (grpc-go), before any etcd call."""
    if placement.format is not Format.NATIVE:
        raise ValidationError("drain", "draining needs the native registry format")


async def _drain(
    client: EtcdClient, done: Registered, placement: Placement, seconds: float
) -> None:
    """Mark the endpoint DRAINING under its lease (kept alive meanwhile), then wait."""
    if seconds <= 0 or done.end is not None:
        return
    value = draining_value(done.registration, placement)
    try:
        held = await client.put_if_leased(done.key.encode(), value, lease=done.lease_id)
    except EtcdError as exc:
        log.warning("drain_failed", key=done.key, error=str(exc))
        return
    if not held:  # deregistered meanwhile (`xdscp deregister`): never write it back
        log.info("drain_skipped", key=done.key, reason="the key is gone or held by another lease")
        return
    done.value = value
    log.info("draining", key=done.key, seconds=seconds)
    await asyncio.sleep(seconds)  # the drain itself: in-flight work finishes meanwhile


@contextlib.asynccontextmanager
async def register(
    client: EtcdClient,
    registration: Registration,
    placement: Placement | None = None,
    *,
    ttl: int = 10,
    drain: float = 0.0,
) -> AsyncIterator[Registered]:
    """Register while the block runs: grant a lease, create the key, keep it alive, revoke.

    Entering waits (retrying with backoff) until etcd accepts the write; it raises for an
    invalid registration, a key someone else holds (KeyHeldError: never overwritten) and
    errors no retry can fix (wrong credentials). While the block runs the registration
    survives etcd restarts, leader changes and lost leases; if its key is deleted or taken
    by someone else it ends (`Registered.end`, `wait_ended()`; the block goes on, the key
    is not written back). With `drain`
    seconds (native format), leaving first marks the endpoint DRAINING (clients stop sending
    it new requests, in-flight ones finish) and keeps the lease that long, then revokes it;
    a cancellation during the drain revokes at once.
    """
    check_int("ttl", ttl, 2, 86_400)
    placement = placement or Placement()
    if drain > 0:
        require_native_for_drain(placement)
    key, value = encode(registration, placement)
    done = Registered(key, value, await claim(client, key, value, ttl), registration)
    log.info("registered", key=key, lease=f"{done.lease_id:x}", ttl=ttl)
    task = asyncio.create_task(_hold(client, done, ttl))
    try:
        yield done
    finally:
        try:
            await _drain(client, done, placement, drain)
        finally:
            task.cancel()
            await asyncio.wait([task])  # the caller's own cancellation still propagates
            await _revoke(client, done)


async def deregister(
    client: EtcdClient,
    service: str,
    endpoint_id: str,
    placement: Placement,
    *,
    drain: float = 0.0,
) -> bool:
    """Delete one registration's key, whoever holds it; True when it existed. With `drain`
    seconds (native format) the endpoint is first marked DRAINING under its own lease, then
    deleted only if that lease still holds it (a registrar that took the key meanwhile
    keeps it)."""
    key = placement.key(service, endpoint_id).encode()
    if drain > 0:
        require_native_for_drain(placement)
        kv = await client.get(key)
        if kv is None:
            return False
        registration = parse_native_value(service, endpoint_id, kv.value)
        value = draining_value(registration, placement)
        if not await client.put_if_leased(key, value, lease=kv.lease):
            return False  # gone (or replaced) since it was read: nothing to drain
        log.info("draining", key=key.decode(), seconds=drain)
        await asyncio.sleep(drain)  # the drain itself: in-flight work finishes meanwhile
        return await client.delete_if_leased(key, lease=kv.lease)
    return await client.delete(key) > 0


def policy_key(service: str, policies_prefix: str = DEFAULT_POLICIES_PREFIX) -> str:
    """The etcd key of `service`'s stored policy (the name checked first)."""
    return f"{policies_prefix}{check_service_name(service)}"


async def set_policy(
    client: EtcdClient,
    service: str,
    policy: BalancingPolicy,
    policies_prefix: str = DEFAULT_POLICIES_PREFIX,
) -> str:
    """Store `service`'s balancing policy; returns the key written."""
    key = policy_key(service, policies_prefix)
    await client.put(key.encode(), policy_value(policy))
    return key


async def get_policy(
    client: EtcdClient, service: str, policies_prefix: str = DEFAULT_POLICIES_PREFIX
) -> BalancingPolicy | None:
    """`service`'s stored policy, or None when it has none (the default applies)."""
    kv = await client.get(policy_key(service, policies_prefix).encode())
    return None if kv is None else parse_policy(kv.value)


def routes_key(service: str, routes_prefix: str = DEFAULT_ROUTES_PREFIX) -> str:
    """The etcd key of `service`'s stored routes (the name checked first)."""
    return f"{routes_prefix}{check_service_name(service)}"


async def set_routes(
    client: EtcdClient, service: str, routes: RouteTable, routes_prefix: str = DEFAULT_ROUTES_PREFIX
) -> str:
    """Store `service`'s routes (replacing any); returns the key written."""
    key = routes_key(service, routes_prefix)
    await client.put(key.encode(), routes_value(routes))
    return key


async def get_routes(
    client: EtcdClient, service: str, routes_prefix: str = DEFAULT_ROUTES_PREFIX
) -> RouteTable | None:
    """`service`'s stored routes, or None when it has none (one route to itself)."""
    kv = await client.get(routes_key(service, routes_prefix).encode())
    return None if kv is None else parse_routes(kv.value)


async def delete_routes(
    client: EtcdClient, service: str, routes_prefix: str = DEFAULT_ROUTES_PREFIX
) -> str | None:
    """Delete `service`'s stored routes; the key deleted, or None when there was none."""
    key = routes_key(service, routes_prefix)
    return key if await client.delete(key.encode()) else None
