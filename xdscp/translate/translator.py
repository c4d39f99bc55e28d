"""ServiceSet → Snapshot, rebuilding only the services that changed.

`Translator` keeps, per service, the serialized resources of its last translation, so an
unchanged service costs nothing (or one identity check) and its `Resource` objects (and their
bytes) are shared by every snapshot and every stream; each snapshot is derived from the
previous one (`Snapshot.updated`). A service whose translation fails keeps its last good
resources, and the failure is reported; other services are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from google.protobuf import any_pb2

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.errors import TranslationError
from xdscp.model import BalancingPolicy, ClientKind, Service, ServiceSet
from xdscp.translate.envoy import (
    cluster_for,
    http_listener,
    load_assignment_for,
    route_configuration_any,
    virtual_host_bytes,
)
from xdscp.translate.grpc import (
    grpc_cluster,
    grpc_listener,
    grpc_load_assignment,
    grpc_route_configuration,
    grpc_warnings,
)
from xdscp.translate.options import TranslateOptions

log = structlog.get_logger(__name__)


def pack(type_url: TypeUrl, name: str, message: Any) -> Resource:
    """Serialize `message` once, deterministically, as the `Any` a DiscoveryResponse carries."""
    wrapped = any_pb2.Any()
    wrapped.Pack(message, deterministic=True)
    return Resource(type_url, name, wrapped.SerializeToString(deterministic=True))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A service that could not be translated, and why (it keeps its last good resources)."""

    service: str
    reason: str


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """A snapshot and the services left out of it (or kept at their last good version)."""

    snapshot: Snapshot
    rejected: tuple[Rejection, ...]


ServiceResources = tuple[Resource, ...]
RouteKey = tuple[object, ...]


def route_key(service: Service) -> RouteKey:
    """What a service's Envoy virtual host depends on besides its name: retries, timeout."""
    return (service.policy.retries, service.policy.timeout)


Builder = Callable[[Service, TranslateOptions], ServiceResources]


def envoy_policy_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """What depends on the service's name and policy only: its Cluster."""
    return (pack(TypeUrl.CLUSTER, service.name, cluster_for(service, options)),)


def envoy_endpoint_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """What depends on the endpoints: the ClusterLoadAssignment."""
    return (pack(TypeUrl.ENDPOINT, service.name, load_assignment_for(service, options)),)


def grpc_policy_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """Listener (named as the target), RouteConfiguration and Cluster for gRPC."""
    return (
        pack(TypeUrl.CLUSTER, service.name, grpc_cluster(service, options.connect_timeout_ms)),
        pack(TypeUrl.LISTENER, service.name, grpc_listener(service)),
        pack(TypeUrl.ROUTE, service.name, grpc_route_configuration(service)),
    )


def grpc_endpoint_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """The ClusterLoadAssignment for gRPC."""
    del options  # the same whatever the options
    return (pack(TypeUrl.ENDPOINT, service.name, grpc_load_assignment(service)),)


# Per client kind: (resources that depend on name + policy, resources that depend on endpoints).
_BUILDERS: dict[ClientKind, tuple[Builder, Builder]] = {
    ClientKind.ENVOY: (envoy_policy_resources, envoy_endpoint_resources),
    ClientKind.GRPC: (grpc_policy_resources, grpc_endpoint_resources),
}


def envoy_service_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """The Cluster and ClusterLoadAssignment of one service, serialized."""
    return envoy_policy_resources(service, options) + envoy_endpoint_resources(service, options)


class Translator:
    """Translates whole service sets for one client kind, remembering per-service results.

    Each call compares the new set with the previous one by identity (sources keep the very
    same `Service` object while it does not change), translates only the services that differ
    and derives the snapshot from the previous one, so one changed endpoint among ten thousand
    services costs about what it costs among a hundred.
    """

    def __init__(
        self, options: TranslateOptions | None = None, client: ClientKind = ClientKind.ENVOY
    ) -> None:
        self.options = options or TranslateOptions()
        self.client = client
        self._input: dict[str, Service] = {}
        self._built: dict[str, tuple[Service, ServiceResources]] = {}  # last good, per name
        self._rejected: dict[str, Rejection] = {}
        self._snapshot: Snapshot | None = None
        self._listener: Resource | None = None
        # service → (what its route depends on, its serialized virtual host)
        self._hosts: dict[str, tuple[RouteKey, bytes]] = {}
        self._policy_parts: dict[str, tuple[BalancingPolicy, ServiceResources]] = {}
        # service → how this client kind will behave differently from the policy's name
        self.notes: dict[str, tuple[str, ...]] = {}

    def _build(self, service: Service) -> ServiceResources:
        """The service's resources; the policy part is reused while the policy is unchanged
        (an endpoint change re-translates only the ClusterLoadAssignment)."""
        by_policy, by_endpoints = _BUILDERS[self.client]
        known = self._policy_parts.get(service.name)
        if known is not None and known[0] == service.policy:
            policy_part = known[1]
        else:
            policy_part = by_policy(service, self.options)
            self._policy_parts[service.name] = (service.policy, policy_part)
            if self.client is ClientKind.GRPC:
                notes = tuple(grpc_warnings(service))
                for note in notes:
                    log.warning("grpc_policy_approximated", service=service.name, note=note)
                if notes:
                    self.notes[service.name] = notes
                else:
                    self.notes.pop(service.name, None)
        if self.client is ClientKind.ENVOY:
            self._note_ejection(service)
        return policy_part + by_endpoints(service, self.options)

    def _note_ejection(self, service: Service) -> None:
        """Warn once when the policy's max_ejection_percent lets Envoy eject no host of the
        service's endpoints (the note is kept in `notes` while it holds)."""
        od = service.policy.outlier_detection
        note = od.ejection_note(len(service.endpoints)) if od is not None else None
        known = self.notes.get(service.name)
        if note is None:
            self.notes.pop(service.name, None)
        elif known != (note,):
            self.notes[service.name] = (note,)
            log.warning(
                "outlier_ejection_impossible",
                service=service.name, endpoints=len(service.endpoints), note=note,
            )  # fmt: skip

    def _listener_resources(self, names: Sequence[str]) -> tuple[Resource, ...]:
        """The HTTP listener and the route table naming every service, `names` sorted.

        Each service's virtual host is serialized once and kept (until its retries or timeout
        change); the table is a join of those bytes, so adding a service among ten thousand
        does not rebuild them all.
        """
        if self._listener is None:
            listener = http_listener(self.options)
            self._listener = pack(TypeUrl.LISTENER, self.options.listener_name, listener)
        hosts = []
        for name in names:
            service = self._built[name][0]
            known = self._hosts.get(name)
            if known is None or known[0] != route_key(service):
                policy = service.policy
                known = self._hosts[name] = (
                    route_key(service),
                    virtual_host_bytes(name, self.options, policy),
                )
            hosts.append(known[1])
        for gone in self._hosts.keys() - set(names):
            del self._hosts[gone]
        default = self._built.get(self.options.default_service or "")
        default_policy = default[0].policy if default is not None else None
        table = route_configuration_any(hosts, names, self.options, default_policy)
        return self._listener, Resource(TypeUrl.ROUTE, self.options.route_name, table)

    def _route_changed(self, name: str) -> bool:
        """True when the built service's virtual host no longer matches the cached one."""
        if self.client is not ClientKind.ENVOY or name not in self._built:
            return False
        known = self._hosts.get(name)
        return known is not None and known[0] != route_key(self._built[name][0])

    def _apply(self, name: str, service: Service) -> tuple[ServiceResources, Rejection | None]:
        """Translate one changed service; on failure keep its last good resources."""
        known = self._built.get(name)
        if known is not None and known[0] == service:
            self._rejected.pop(name, None)
            return known[1], None
        try:
            built = self._build(service)
        except TranslationError as error:
            rejection = Rejection(name, str(error))
            self._rejected[name] = rejection
            log.warning("service_translation_rejected", service=name, reason=str(error))
            return (known[1] if known is not None else ()), rejection
        self._rejected.pop(name, None)
        self._built[name] = (service, built)
        return built, None

    def _diff(
        self, services: ServiceSet, hint: Collection[str] | None
    ) -> tuple[list[str], list[str]]:
        """(changed, removed) names since the previous call; O(hint) when a hint is given."""
        previous = self._input
        if hint is None or self._snapshot is None:
            changed = sorted(n for n, s in services.items() if previous.get(n) is not s)
            removed = sorted(previous.keys() - services.keys())
            self._input = dict(services)
            return changed, removed
        changed, removed = [], []
        for name in sorted(hint):
            service = services.get(name)
            if service is None:
                if previous.pop(name, None) is not None:
                    removed.append(name)
            elif previous.get(name) is not service:
                previous[name] = service
                changed.append(name)
        return changed, removed

    def translate(
        self, services: ServiceSet, changed: Collection[str] | None = None
    ) -> TranslationResult:
        """The snapshot for `services`; only services that changed are re-translated.

        `changed`, when given, names every service that may differ from the previous call
        (added, replaced or removed): the others are not even compared. `rejected` lists the
        services whose new input could not be translated in this call (they keep their last
        good resources; a service never translated is left out).
        """
        changed_list, removed = self._diff(services, changed)
        upserts: list[Resource] = []
        removals: dict[TypeUrl, list[str]] = {}
        rejected: list[Rejection] = []
        names_changed = self._snapshot is None
        for name in removed:
            self._rejected.pop(name, None)
            gone = self._built.pop(name, None)
            self._policy_parts.pop(name, None)
            self.notes.pop(name, None)
            names_changed |= gone is not None
            for resource in gone[1] if gone is not None else ():
                removals.setdefault(resource.type_url, []).append(resource.name)
        for name in changed_list:
            known = name in self._built
            built, rejection = self._apply(name, services[name])
            names_changed |= known != (name in self._built) or self._route_changed(name)
            upserts.extend(built)
            if rejection is not None:
                rejected.append(rejection)
        if self.client is ClientKind.ENVOY and names_changed:
            # The route table names every cluster: rebuilt only when the set of names (or a
            # service's retries / timeout) changes.
            upserts.extend(self._listener_resources(tuple(sorted(self._built))))
        if self._snapshot is None:
            self._snapshot = Snapshot.of(upserts)
        else:
            self._snapshot = self._snapshot.updated(upserts, removals)
        return TranslationResult(self._snapshot, tuple(rejected))


def translate(
    services: ServiceSet,
    options: TranslateOptions | None = None,
    client: ClientKind = ClientKind.ENVOY,
) -> TranslationResult:
    """One-shot translation (no memory between calls); see `Translator` for the cached form."""
    return Translator(options, client).translate(services)
