"""The registry's I/O-free core: etcd changes in, services out.

`RegistryState` is fed the changes of each watched prefix (native endpoints, grpc-go targets,
policies, routes), parses and validates every value, and builds the `ServiceSet` on demand. Only the
services touched since the last build are rebuilt, so one change costs one service, not the
whole registry. Hostnames are looked up through a callback supplied by the async shell.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import immutables

from xdscp.errors import ValidationError
from xdscp.etcd import WatchEvent, WatchEventType
from xdscp.model import (
    BalancingPolicy,
    Endpoint,
    NameClaims,
    RouteTable,
    Service,
    ServiceUpdate,
    check_service_name,
)
from xdscp.registry.codec import decode_key, display_key
from xdscp.registry.layout import GrpcGoTarget, RegistryLayout
from xdscp.registry.schema import (
    Registration,
    is_ip_literal,
    parse_grpc_go_key,
    parse_grpc_go_value,
    parse_native_key,
    parse_native_value,
    parse_policy,
    parse_routes,
    rejection_reason,
)

Lookup = Callable[[str], str | None]
"""Hostname -> IP literal (None when it does not resolve)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry skipped: its key, the metric reason and a human message."""

    key: str
    reason: str
    message: str


def is_ip(host: str) -> bool:
    """True for an IPv4/IPv6 literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


Parse = Callable[[str, bytes], Registration | None]


class RegistryState:
    """Parsed registrations and policies, and the services built from them.

    A rejected entry never changes what other keys contribute: a key that is not UTF-8 (or
    too long) is never stored, so it cannot shadow another; a bad value at a key removes
    only that key's own registration; a bad policy keeps the service's last good policy.
    Each rejection is returned once per key and content (again only after the key changed).
    """

    def __init__(self, layout: RegistryLayout | None = None) -> None:
        self.layout = layout or RegistryLayout()
        self._names = NameClaims(self.layout.domain_suffixes)
        self._declared = frozenset(t.service for t in self.layout.grpc_targets)
        self._regs: dict[str, dict[str, Registration]] = {}  # service -> key -> registration
        self._key_service: dict[str, str] = {}
        self._revisions: dict[str, int] = {}  # key -> mod revision (orders name clashes)
        self._policies: dict[str, BalancingPolicy] = {}
        self._routes: dict[str, RouteTable] = {}
        self._rejected: dict[bytes, tuple[str, int]] = {}  # raw key -> (reason, value hash)
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
            self._revisions.pop(key, None)
            self._dirty.add(service)
            if old.host in self._host_refs:
                self._host_refs[old.host] -= 1
                if not self._host_refs[old.host]:
                    del self._host_refs[old.host]

    def _store(self, key: str, registration: Registration, revision: int) -> None:
        self._regs.setdefault(registration.service, {})[key] = registration
        self._key_service[key] = registration.service
        self._revisions[key] = revision
        self._dirty.add(registration.service)
        if not is_ip_literal(registration.host):
            self._host_refs[registration.host] = self._host_refs.get(registration.host, 0) + 1

    def _reject(self, event: WatchEvent, exc: ValidationError) -> Rejection | None:
        """The rejection to report, or None when this key was already rejected for this."""
        reason = rejection_reason(exc)
        seen = (reason, hash(event.value))
        if self._rejected.get(event.key) == seen:
            return None
        self._rejected[event.key] = seen
        return Rejection(display_key(event.key), reason, str(exc))

    def _each(
        self, events: Iterable[WatchEvent], take: Callable[[WatchEvent], None]
    ) -> list[Rejection]:
        """`take` each event in order. A `ValidationError` from a PUT is that key's rejection
        (reported once per reason and value); a DELETE or an accepted PUT clears it."""
        rejections: list[Rejection] = []
        for event in events:
            if event.kind is WatchEventType.DELETE:
                self._rejected.pop(event.key, None)
            try:
                take(event)
            except ValidationError as exc:
                if event.kind is WatchEventType.PUT and (found := self._reject(event, exc)):
                    rejections.append(found)
                continue
            self._rejected.pop(event.key, None)
        return rejections

    def _apply(self, events: Iterable[WatchEvent], parse: Parse) -> list[Rejection]:
        partly: list[Rejection] = []  # kept, without the load they gave

        def take(event: WatchEvent) -> None:
            key = decode_key(event.key)  # a key that fails was never stored
            self._remove(key)
            if event.kind is WatchEventType.DELETE:
                return
            registration = parse(key, event.value)
            if registration is not None:
                self._store(key, registration, event.mod_revision)
                if registration.load_refused is not None:
                    message = f"{registration.load_refused} (the endpoint is kept, without it)"
                    partly.append(Rejection(key, "invalid_load", message))

        return [*self._each(events, take), *partly]

    def apply_native(self, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under the native services prefix."""
        root, max_bytes = self.layout.services_prefix, self.layout.max_value_bytes

        def parse(key: str, raw: bytes) -> Registration:
            service, endpoint_id = parse_native_key(key, root)
            return parse_native_value(service, endpoint_id, raw, max_bytes=max_bytes)

        return self._apply(events, parse)

    def apply_grpc_go(self, target: GrpcGoTarget, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under one grpc-go target's prefix."""
        max_bytes = self.layout.max_value_bytes

        def parse(key: str, raw: bytes) -> Registration | None:
            endpoint_id = parse_grpc_go_key(key, target.prefix)
            return parse_grpc_go_value(target.service, endpoint_id, raw, max_bytes=max_bytes)

        return self._apply(events, parse)

    def apply_policies(self, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under the policies prefix. A malformed policy written over a valid
        one leaves the last good policy in force (the rejection says so)."""

        def take(event: WatchEvent) -> None:
            change = self._policy_change(event)
            if change is not None:
                self._dirty.add(change[0])
                self._policies[change[0]] = change[1]

        return self._each(events, take)

    def _policy_change(self, event: WatchEvent) -> tuple[str, BalancingPolicy] | None:
        """The new policy of the event's service (None when it was deleted)."""
        key = decode_key(event.key)
        service = key.removeprefix(self.layout.policies_prefix)
        check_service_name(service, "key")
        if event.kind is WatchEventType.DELETE:
            if self._policies.pop(service, None) is not None:
                self._dirty.add(service)
            return None
        try:
            return service, parse_policy(event.value, max_bytes=self.layout.max_value_bytes)
        except ValidationError as exc:
            if service in self._policies:
                message = f"{exc.message}; the last good policy stays in force"
                raise ValidationError(exc.field, message) from None
            raise

    def apply_routes(self, events: Iterable[WatchEvent]) -> list[Rejection]:
        """Apply changes under the routes prefix. A malformed table written over a valid one
        leaves the last good routes in force (the rejection says so)."""

        def take(event: WatchEvent) -> None:
            key = decode_key(event.key)
            service = key.removeprefix(self.layout.routes_prefix)
            check_service_name(service, "key")
            if event.kind is WatchEventType.DELETE:
                if self._routes.pop(service, None) is not None:
                    self._dirty.add(service)
                return
            try:
                table = parse_routes(event.value, max_bytes=self.layout.max_value_bytes)
            except ValidationError as exc:
                if service in self._routes:
                    message = f"{exc.message}; the last good routes stay in force"
                    raise ValidationError(exc.field, message) from None
                raise
            self._dirty.add(service)
            self._routes[service] = table

        return self._each(events, take)

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

        A service whose name clashes with one already served (`NameClaims`) is refused:
        held names are settled first, then newcomers in the order their oldest live key was
        written (etcd revision), then by name, so the earlier service keeps serving.
        Afterwards `changed` says whether any service differs from the previous build and
        `endpoint_count` is the total number of endpoints.
        """
        rejections: list[Rejection] = []
        changed: set[str] = set()
        built_map = self._built.mutate()
        todo = self._dirty | self._names.refused  # a refused name may have been freed
        for service in todo:
            if not self._exists(service):
                self._names.release(service)
        for service in sorted(todo, key=self._rank):
            old = built_map.pop(service, None)
            self.endpoint_count -= len(old.endpoints) if old is not None else 0
            built = self._build_one(service, lookup, rejections)
            if built is not None:
                built = old if built == old else built  # identical object: cheap comparisons
                built_map[service] = built
                self.endpoint_count += len(built.endpoints)
            if built is not old:
                changed.add(service)
        self._dirty.clear()
        self.changed = bool(changed)
        self._built = built_map.finish()  # a new persistent map: earlier publications keep theirs
        return ServiceUpdate(self._built, frozenset(changed)), rejections

    def _exists(self, service: str) -> bool:
        return bool(self._regs.get(service)) or service in self._declared

    def _rank(self, service: str) -> tuple[int, int, str]:
        revisions = (self._revisions[key] for key in self._regs.get(service, {}))
        return (0 if self._names.holds(service) else 1, min(revisions, default=0), service)

    def _build_one(self, service: str, lookup: Lookup, out: list[Rejection]) -> Service | None:
        """`service` as served now (None when gone or refused); new rejections go to `out`."""
        if not self._exists(service):
            self._regs.pop(service, None)
            self._reported.pop(service, None)
            return None
        refused_before = service in self._names.refused
        clash = self._names.claim(service)
        if clash is not None:
            if not refused_before:
                out.append(self._clash(service, *clash))
            return None
        built, found = self._build_service(service, self._regs.get(service, {}), lookup)
        seen = {(r.key, r.reason) for r in found}
        reported = self._reported.get(service, set())
        out += [r for r in found if (r.key, r.reason) not in reported]
        self._reported[service] = seen
        return built

    def _clash(self, service: str, holder: str, name: str) -> Rejection:
        keys = sorted(self._regs.get(service, {}))
        feeds = [t.prefix for t in self.layout.grpc_targets if t.service == service]
        message = (
            f"service {service!r} is refused: clients know it as {name!r}, which is"
            f" {holder!r}'s; {holder!r} keeps serving (rename one of them)"
        )
        return Rejection((keys or feeds)[0], "name_clash", message)

    def _endpoint(self, key: str, reg: Registration, address: str) -> Endpoint:
        """The model endpoint of a registration, reused while neither changes."""
        cached = self._endpoints.get(key)
        if cached is not None and cached[0] is reg and cached[1] == address:
            return cached[2]
        endpoint = Endpoint(
            address, reg.port, reg.weight, reg.locality, reg.priority, reg.health,
            reg.metadata, reg.hash_key, reg.load,
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
            try:
                endpoint = self._endpoint(key, reg, address)
            except ValidationError as exc:  # e.g. a resolver answering something odd
                rejections.append(Rejection(key, rejection_reason(exc), str(exc)))
                continue
            ident = (endpoint.address, endpoint.port)
            if ident in endpoints:
                message = f"{endpoint.key} is already registered under another key"
                rejections.append(Rejection(key, "duplicate", message))
                continue
            endpoints[ident] = endpoint
        policy = self._policies.get(service, BalancingPolicy())
        routes = self._routes.get(service)
        return Service(service, tuple(endpoints.values()), policy, routes), rejections
