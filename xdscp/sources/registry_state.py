"""The registry's I/O-free core: etcd changes in, services out.

`RegistryState` is fed the changes of each watched prefix (native endpoints, grpc-go targets,
policies), parses and validates every value, and builds the `ServiceSet` on demand. Only the
services touched since the last build are rebuilt, so one change costs one service, not the
whole registry. Hostnames are looked up through a callback supplied by the async shell.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import immutables

from xdscp.errors import ValidationError
from xdscp.etcd.types import EventKind, WatchEvent
from xdscp.model import BalancingPolicy, Endpoint, Service, ServiceUpdate, check_service_name
from xdscp.sources.registry_format import (
    MAX_VALUE_BYTES,
    Registration,
    parse_grpc_go_key,
    parse_grpc_go_value,
    parse_native_key,
    parse_native_value,
    parse_policy,
    rejection_reason,
)

DEFAULT_SERVICES_PREFIX = "/xdscp/services/"
DEFAULT_POLICIES_PREFIX = "/xdscp/policies/"

Lookup = Callable[[str], str | None]
"""Hostname -> IP literal (None when it does not resolve)."""


@dataclass(frozen=True, slots=True)
class GrpcGoTarget:
    """A grpc-go naming target (`<target>/<id>` keys) and the service it feeds."""

    target: str
    service: str

    @classmethod
    def parse(cls, text: str) -> GrpcGoTarget:
        """`TARGET` (the service is named like the target) or `SERVICE=TARGET`."""
        service, sep, target = text.partition("=")
        if not sep:
            service = target = text
        if not target or target.endswith("/"):
            raise ValidationError("grpc_target", f"needs a target without trailing /: {text!r}")
        return cls(target, check_service_name(service, "grpc_target"))

    @property
    def prefix(self) -> str:
        """The key prefix, `<target>/` (so `svc` never matches `svc2/...`)."""
        return f"{self.target}/"


@dataclass(frozen=True, slots=True)
class RegistryLayout:
    """Where the registry lives in etcd."""

    services_prefix: str = DEFAULT_SERVICES_PREFIX
    policies_prefix: str = DEFAULT_POLICIES_PREFIX
    grpc_targets: tuple[GrpcGoTarget, ...] = ()
    max_value_bytes: int = MAX_VALUE_BYTES


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry skipped: its key, the metric reason and a human message."""

    key: str
    reason: str
    message: str


def _decode_key(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def is_ip(host: str) -> bool:
    """True for an IPv4/IPv6 literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class RegistryState:
    """Parsed registrations and policies, and the services built from them."""

    def __init__(self, layout: RegistryLayout | None = None) -> None:
        self.layout = layout or RegistryLayout()
        self._regs: dict[str, dict[str, Registration]] = {}  # service -> key -> registration
        self._key_service: dict[str, str] = {}
        self._policies: dict[str, BalancingPolicy] = {}
        self._built: immutables.Map[str, Service] = immutables.Map()  # shared with publications
        self._dirty: set[str] = {t.service for t in self.layout.grpc_targets}
        self._reported: dict[str, set[tuple[str, str]]] = {}
        self._host_refs: dict[str, int] = {}  # hostname -> registrations using it
        self.changed = False
        self.endpoint_count = 0
        self._endpoints: dict[str, tuple[Registration, str, Endpoint]] = {}  # built, per key

    def _remove(self, key: str) -> None:
        service = self._key_service.pop(key, None)
        if service is not None:
            old = self._regs[service].pop(key)
            self._endpoints.pop(key, None)
            self._dirty.add(service)
            if old.host in self._host_refs:
                self._host_refs[old.host] -= 1
                if not self._host_refs[old.host]:
                    del self._host_refs[old.host]

    def _store(self, key: str, registration: Registration) -> None:
        self._remove(key)
        self._regs.setdefault(registration.service, {})[key] = registration
        self._key_service[key] = registration.service
        self._dirty.add(registration.service)
        if not is_ip(registration.host):
            self._host_refs[registration.host] = self._host_refs.get(registration.host, 0) + 1

    def apply_native(self, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under the native services prefix."""
        rejections: list[Rejection] = []
        for event in events:
            key = _decode_key(event.key)
            self._remove(key)
            if event.kind is EventKind.DELETE:
                continue
            try:
                service, endpoint_id = parse_native_key(key, self.layout.services_prefix)
                registration = parse_native_value(
                    service, endpoint_id, event.value, max_bytes=self.layout.max_value_bytes
                )
            except ValidationError as exc:
                rejections.append(Rejection(key, rejection_reason(exc), str(exc)))
                continue
            self._store(key, registration)
        return rejections

    def apply_grpc_go(self, target: GrpcGoTarget, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under one grpc-go target's prefix."""
        rejections: list[Rejection] = []
        for event in events:
            key = _decode_key(event.key)
            self._remove(key)
            if event.kind is EventKind.DELETE:
                continue
            try:
                endpoint_id = parse_grpc_go_key(key, target.prefix)
                registration = parse_grpc_go_value(
                    target.service, endpoint_id, event.value, max_bytes=self.layout.max_value_bytes
                )
            except ValidationError as exc:
                rejections.append(Rejection(key, rejection_reason(exc), str(exc)))
                continue
            if registration is not None:
                self._store(key, registration)
        return rejections

    def apply_policies(self, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under the policies prefix."""
        rejections: list[Rejection] = []
        prefix = self.layout.policies_prefix
        for event in events:
            key = _decode_key(event.key)
            service = key.removeprefix(prefix)
            if self._policies.pop(service, None) is not None:
                self._dirty.add(service)
            if event.kind is EventKind.DELETE:
                continue
            try:
                check_service_name(service, "key")
                policy = parse_policy(event.value, max_bytes=self.layout.max_value_bytes)
            except ValidationError as exc:
                rejections.append(Rejection(key, rejection_reason(exc), str(exc)))
                continue
            self._policies[service] = policy
            self._dirty.add(service)
        return rejections

    def registrations(self) -> list[tuple[str, Registration]]:
        """Every valid registration as `(key, registration)`, sorted by service then key."""
        return sorted(
            ((key, reg) for regs in self._regs.values() for key, reg in regs.items()),
            key=lambda item: (item[1].service, item[0]),
        )

    def hostnames(self) -> set[str]:
        """Every registered host that is not an IP literal (kept up to date incrementally)."""
        return set(self._host_refs)

    def touch_hostnames(self, hosts: Iterable[str]) -> None:
        """Mark the services using any of `hosts` for rebuild (their addresses changed)."""
        changed = set(hosts)
        if not changed:
            return
        for service, regs in self._regs.items():
            if any(r.host in changed for r in regs.values()):
                self._dirty.add(service)

    def build(self, lookup: Lookup) -> tuple[Mapping[str, Service], list[Rejection]]:
        """The current services, rebuilding only those changed; plus newly found rejections.

        Afterwards `changed` says whether any service differs from the previous build and
        `endpoint_count` is the total number of endpoints.
        """
        rejections: list[Rejection] = []
        declared = {t.service for t in self.layout.grpc_targets}
        changed: set[str] = set()
        built_map = self._built.mutate()
        for service in sorted(self._dirty):
            old = built_map.pop(service, None)
            regs = self._regs.get(service, {})
            self.endpoint_count -= len(old.endpoints) if old is not None else 0
            if not regs and service not in declared:
                self._regs.pop(service, None)
                self._reported.pop(service, None)
                if old is not None:
                    changed.add(service)
                continue
            built, found = self._build_service(service, regs, lookup)
            if built == old:
                built = old  # keep the identical object: cheap comparisons downstream
            if built is not old:
                changed.add(service)
            built_map[service] = built
            self.endpoint_count += len(built.endpoints)
            seen = {(r.key, r.reason) for r in found}
            reported = self._reported.get(service, set())
            rejections += [r for r in found if (r.key, r.reason) not in reported]
            self._reported[service] = seen
        self._dirty.clear()
        self.changed = bool(changed)
        self._built = built_map.finish()  # a new persistent map: earlier publications keep theirs
        return ServiceUpdate(self._built, frozenset(changed)), rejections

    def _endpoint(self, key: str, reg: Registration, address: str) -> Endpoint:
        """The model endpoint of a registration, reused while neither changes."""
        cached = self._endpoints.get(key)
        if cached is not None and cached[0] is reg and cached[1] == address:
            return cached[2]
        endpoint = Endpoint(
            address, reg.port, reg.weight, reg.locality, reg.priority, reg.health,
            reg.metadata, reg.hash_key,
        )  # fmt: skip
        self._endpoints[key] = (reg, address, endpoint)
        return endpoint

    def _build_service(
        self, service: str, regs: Mapping[str, Registration], lookup: Lookup
    ) -> tuple[Service, list[Rejection]]:
        endpoints: dict[tuple[str, int], Endpoint] = {}
        rejections: list[Rejection] = []
        for key in sorted(regs):
            reg = regs[key]
            address = lookup(reg.host) if reg.host in self._host_refs else reg.host
            if address is None:
                rejections.append(Rejection(key, "unresolvable", f"{reg.host} does not resolve"))
                continue
            endpoint = self._endpoint(key, reg, address)
            ident = (endpoint.address, endpoint.port)
            if ident in endpoints:
                message = f"{endpoint.key} is already registered under another key"
                rejections.append(Rejection(key, "duplicate", message))
                continue
            endpoints[ident] = endpoint
        policy = self._policies.get(service, BalancingPolicy())
        return Service(service, tuple(endpoints.values()), policy), rejections
