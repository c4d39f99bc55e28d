"""Registering endpoints in etcd: the Python API behind `xdscp register` and friends.

Applications register themselves with an async context manager:

    me = build_registration("api", "10.0.0.7", 8080, weight=2, locality=Locality(zone="a"))
    async with EtcdClient(EtcdConfig(endpoints=("http://etcd:2379",))) as client:
        async with register(client, me, ttl=10) as registered:
            ...  # registered.key stays in etcd while the block runs

The key is attached to a lease kept alive in the background and revoked on exit, so a crashed
process's endpoint vanishes when the TTL runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog

from xdscp.errors import EtcdError, ValidationError
from xdscp.etcd import EtcdClient, LeaseExpiredError, keep_alive
from xdscp.etcd.backoff import Backoff
from xdscp.model import BalancingPolicy, Health, Locality, check_int, check_service_name
from xdscp.sources.registry_format import (
    Registration,
    grpc_go_value,
    native_value,
    parse_grpc_go_value,
    parse_native_value,
    parse_policy,
    policy_value,
)
from xdscp.sources.registry_state import DEFAULT_POLICIES_PREFIX, DEFAULT_SERVICES_PREFIX

log = structlog.get_logger("xdscp.registration")


class Format(StrEnum):
    """How a registration is written."""

    NATIVE = "native"
    GRPC_GO = "grpc-go"


@dataclass(frozen=True, slots=True)
class Registered:
    """What was written: the key, its value and the lease carrying it."""

    key: str
    value: bytes
    lease_id: int
    registration: Registration


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
) -> Registration:
    """A validated registration (the same checks the registry applies when reading it)."""
    check_service_name(service)
    endpoint_id = endpoint_id or f"{host}:{port}"
    if "/" in endpoint_id or not endpoint_id:
        raise ValidationError("id", f"must be non-empty and contain no '/', got {endpoint_id!r}")
    registration = Registration(
        service, endpoint_id, host, check_int("port", port, 1, 65535), weight,
        locality or Locality(), priority, health, dict(metadata or {}), hash_key,
    )  # fmt: skip
    parse_native_value(service, endpoint_id, native_value(registration))
    return registration


def encode(registration: Registration, placement: Placement) -> tuple[str, bytes]:
    """The key and value to write for `registration`."""
    key = placement.key(registration.service, registration.endpoint_id)
    if placement.format is Format.GRPC_GO:
        value = grpc_go_value(registration)
        parse_grpc_go_value(registration.service, registration.endpoint_id, value)
        return key, value
    return key, native_value(registration)


async def _write(client: EtcdClient, key: str, value: bytes, ttl: int) -> int:
    lease_id = await client.lease_grant(ttl)
    await client.put(key.encode(), value, lease=lease_id)
    return lease_id


async def _rewrite(client: EtcdClient, key: str, value: bytes, ttl: int) -> int:
    """Register again under a new lease, retrying with backoff while etcd is unreachable."""
    backoff = Backoff(0.1, client.config.max_backoff)
    while True:
        try:
            return await _write(client, key, value, ttl)
        except EtcdError as exc:
            log.warning("registration_retry", key=key, error=str(exc))
            await asyncio.sleep(backoff.next_delay())


async def _keep(client: EtcdClient, key: str, value: bytes, ttl: int, box: list[int]) -> None:
    """Keep the lease alive; if etcd lost it (an outage longer than the TTL), register again."""
    while True:
        try:
            await keep_alive(client, box[0], ttl)
        except LeaseExpiredError:
            log.warning("registration_lease_lost", key=key, lease=f"{box[0]:x}")
        box[0] = await _rewrite(client, key, value, ttl)
        log.info("registration_renewed", key=key, lease=f"{box[0]:x}")


@contextlib.asynccontextmanager
async def register(
    client: EtcdClient,
    registration: Registration,
    placement: Placement | None = None,
    *,
    ttl: int = 10,
) -> AsyncIterator[Registered]:
    """Register while the block runs: grant a lease, write the key, keep it alive, revoke."""
    check_int("ttl", ttl, 2, 86_400)
    key, value = encode(registration, placement or Placement())
    box = [await _write(client, key, value, ttl)]
    log.info("registered", key=key, lease=f"{box[0]:x}", ttl=ttl)
    task = asyncio.create_task(_keep(client, key, value, ttl, box))
    try:
        yield Registered(key, value, box[0], registration)
    finally:
        task.cancel()
        await asyncio.wait([task])  # the caller's own cancellation still propagates
        if not task.cancelled() and task.exception() is not None:
            log.error("registration_keepalive_failed", key=key, error=str(task.exception()))
        try:
            await client.lease_revoke(box[0])
        except EtcdError as exc:
            log.warning("deregister_failed", key=key, error=str(exc))
        else:
            log.info("deregistered", key=key)


async def deregister(
    client: EtcdClient, service: str, endpoint_id: str, placement: Placement
) -> bool:
    """Delete one registration's key; True when it existed."""
    return await client.delete(placement.key(service, endpoint_id).encode()) > 0


async def set_policy(
    client: EtcdClient,
    service: str,
    policy: BalancingPolicy,
    policies_prefix: str = DEFAULT_POLICIES_PREFIX,
) -> str:
    """Store `service`'s balancing policy; returns the key written."""
    key = f"{policies_prefix}{check_service_name(service)}"
    await client.put(key.encode(), policy_value(policy))
    return key


async def get_policy(
    client: EtcdClient, service: str, policies_prefix: str = DEFAULT_POLICIES_PREFIX
) -> BalancingPolicy | None:
    """`service`'s stored policy, or None when it has none (the default applies)."""
    kv = await client.get(f"{policies_prefix}{check_service_name(service)}".encode())
    return None if kv is None else parse_policy(kv.value)
