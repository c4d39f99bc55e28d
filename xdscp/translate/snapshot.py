"""ServiceSet → Snapshot, rebuilding only the services that changed.

`Translator` keeps, per service, the serialized resources of its last translation (keyed by
the Service value, which is immutable and hashable), so an unchanged service costs a
dictionary lookup and its `Resource` objects (and their bytes) are shared by every snapshot
and every stream. A service whose translation fails keeps its last good resources, and the
failure is reported; other services are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from google.protobuf import any_pb2

from xdscp.errors import TranslationError
from xdscp.model import Service, ServiceSet
from xdscp.resources import Resource, Snapshot, TypeUrl
from xdscp.translate.envoy import (
    cluster_for,
    http_listener,
    load_assignment_for,
    route_configuration,
)
from xdscp.translate.grpc import (
    grpc_cluster,
    grpc_listener,
    grpc_load_assignment,
    grpc_route_configuration,
    grpc_warnings,
)
from xdscp.translate.options import ClientKind, TranslateOptions

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
Builder = Callable[[Service, TranslateOptions], ServiceResources]


def envoy_service_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """The Cluster and ClusterLoadAssignment of one service, serialized."""
    return (
        pack(TypeUrl.CLUSTER, service.name, cluster_for(service, options)),
        pack(TypeUrl.ENDPOINT, service.name, load_assignment_for(service, options)),
    )


def grpc_service_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """Listener (named as the target), RouteConfiguration, Cluster and CLA for gRPC."""
    return (
        pack(TypeUrl.CLUSTER, service.name, grpc_cluster(service, options.connect_timeout_ms)),
        pack(TypeUrl.ENDPOINT, service.name, grpc_load_assignment(service)),
        pack(TypeUrl.LISTENER, service.name, grpc_listener(service)),
        pack(TypeUrl.ROUTE, service.name, grpc_route_configuration(service)),
    )


_BUILDERS: dict[ClientKind, Builder] = {
    ClientKind.ENVOY: envoy_service_resources,
    ClientKind.GRPC: grpc_service_resources,
}


class Translator:
    """Translates whole service sets for one client kind, remembering per-service results."""

    def __init__(
        self, options: TranslateOptions | None = None, client: ClientKind = ClientKind.ENVOY
    ) -> None:
        self.options = options or TranslateOptions()
        self.client = client
        self._by_value: dict[Service, ServiceResources] = {}
        self._last_good: dict[str, ServiceResources] = {}
        self._routes: tuple[tuple[str, ...], tuple[Resource, ...]] | None = None

    def _service(self, service: Service) -> ServiceResources:
        cached = self._by_value.get(service)
        if cached is None:
            cached = _BUILDERS[self.client](service, self.options)
            if self.client is ClientKind.GRPC:
                for note in grpc_warnings(service):
                    log.warning("grpc_policy_approximated", service=service.name, note=note)
        return cached

    def _listener_resources(self, names: tuple[str, ...]) -> tuple[Resource, ...]:
        if self._routes is None or self._routes[0] != names:
            listener = pack(
                TypeUrl.LISTENER, self.options.listener_name, http_listener(self.options)
            )
            routes = pack(
                TypeUrl.ROUTE, self.options.route_name, route_configuration(names, self.options)
            )
            self._routes = (names, (listener, routes))
        return self._routes[1]

    def translate(self, services: ServiceSet) -> TranslationResult:
        """The snapshot for `services`; only services not seen before are re-translated."""
        by_value: dict[Service, ServiceResources] = {}
        last_good: dict[str, ServiceResources] = {}
        rejected: list[Rejection] = []
        for name in sorted(services):
            service = services[name]
            try:
                built = self._service(service)
            except TranslationError as error:
                rejected.append(Rejection(name, str(error)))
                log.warning("service_translation_rejected", service=name, reason=str(error))
                previous = self._last_good.get(name)
                if previous is not None:
                    last_good[name] = previous
                continue
            by_value[service] = built
            last_good[name] = built
        self._by_value, self._last_good = by_value, last_good
        resources = [r for built in last_good.values() for r in built]
        if self.client is ClientKind.ENVOY:
            resources.extend(self._listener_resources(tuple(sorted(last_good))))
        return TranslationResult(Snapshot.of(resources), tuple(rejected))


def translate(
    services: ServiceSet,
    options: TranslateOptions | None = None,
    client: ClientKind = ClientKind.ENVOY,
) -> TranslationResult:
    """One-shot translation (no memory between calls); see `Translator` for the cached form."""
    return Translator(options, client).translate(services)
