"""The translator of each client kind: `EnvoyTranslator` and `GrpcTranslator`.

Both are `ClientTranslator`s built on `IncrementalTranslator` (only the services that changed
are translated again; see `xdscp.translate.incremental`). Envoy gets a Cluster and a
ClusterLoadAssignment per service, and one HTTP listener with a route table naming every
service; a gRPC client gets per service a Listener named as its target, a
RouteConfiguration, a Cluster and a ClusterLoadAssignment. `translator_for(kind)` builds
the one for a kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import structlog

from xdscp.cache import Resource, TypeUrl
from xdscp.model import ClientKind, Service, ServiceSet
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
from xdscp.translate.incremental import (
    ClientTranslator,
    IncrementalTranslator,
    ServiceResources,
    TranslationResult,
    pack,
)
from xdscp.translate.options import TranslateOptions
from xdscp.translate.routes import route_notes

log = structlog.get_logger(__name__)

RouteKey = tuple[object, ...]


def route_key(service: Service, present: frozenset[str] = frozenset()) -> RouteKey:
    """What a service's Envoy virtual host depends on besides its name: retries, timeout,
    its routes and which of their targets are served (`present`)."""
    return (service.policy.retries, service.policy.timeout, service.routes, present)


def _note_routes(
    notes: dict[str, tuple[str, ...]], service: Service, present: Any, before: tuple[str, ...]
) -> None:
    """Add (or clear) the service's route notes, logging each one not in `before` (the
    service's notes before this translation)."""
    found = tuple(route_notes(service, present))
    for note in found:
        if note not in before:
            log.warning("route_target_missing", service=service.name, note=note)
    rest = tuple(n for n in notes.get(service.name, ()) if not n.startswith("routes: "))
    if rest or found:
        notes[service.name] = rest + found
    else:
        notes.pop(service.name, None)


def envoy_policy_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """What depends on the service's name and policy only: its Cluster."""
    return (pack(TypeUrl.CLUSTER, service.name, cluster_for(service, options)),)


def envoy_endpoint_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """What depends on the endpoints: the ClusterLoadAssignment."""
    return (pack(TypeUrl.ENDPOINT, service.name, load_assignment_for(service, options)),)


def envoy_service_resources(service: Service, options: TranslateOptions) -> ServiceResources:
    """The Cluster and ClusterLoadAssignment of one service, serialized."""
    return envoy_policy_resources(service, options) + envoy_endpoint_resources(service, options)


class EnvoyTranslator(IncrementalTranslator):
    """Envoy's snapshots: per service a Cluster and a ClusterLoadAssignment, and the HTTP
    listener with the route table naming every service."""

    kind: ClassVar[ClientKind] = ClientKind.ENVOY

    def __init__(self, options: TranslateOptions | None = None) -> None:
        super().__init__(options)
        self._listener: Resource | None = None
        # service → (what its route depends on, its serialized virtual host)
        self._hosts: dict[str, tuple[RouteKey, bytes]] = {}

    def _policy_part(self, service: Service) -> ServiceResources:
        return envoy_policy_resources(service, self.options)

    def _endpoint_part(self, service: Service) -> ServiceResources:
        return envoy_endpoint_resources(service, self.options)

    def _built_service(self, service: Service, policy_changed: bool) -> None:
        """Warn once when the policy's max_ejection_percent lets Envoy eject no host of the
        service's endpoints (the note is kept in `notes` while it holds)."""
        del policy_changed  # the endpoints count too
        od = service.policy.outlier_detection
        note = od.ejection_note(len(service.endpoints)) if od is not None else None
        before = self.notes.get(service.name, ())
        if note is None:
            self.notes.pop(service.name, None)
        else:
            if note not in before:
                log.warning(
                    "outlier_ejection_impossible",
                    service=service.name, endpoints=len(service.endpoints), note=note,
                )  # fmt: skip
            self.notes[service.name] = (note,)
        _note_routes(self.notes, service, self._input, before)

    def _shared_changed(self, name: str) -> bool:
        """True when the built service's virtual host no longer matches the cached one."""
        if name not in self._built:
            return False
        known = self._hosts.get(name)
        service = self._built[name][0]
        return known is not None and known[0] != route_key(service, self.present_targets(service))

    def _shared(self, names_changed: bool) -> ServiceResources:
        """The route table names every cluster: rebuilt only when the set of names (or a
        service's retries / timeout) changes."""
        if not names_changed:
            return ()
        return self._listener_resources(tuple(sorted(self._built)))

    def _listener_resources(self, names: Sequence[str]) -> ServiceResources:
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
            key = route_key(service, self.present_targets(service))
            if known is None or known[0] != key:
                host = virtual_host_bytes(name, self.options, service.policy, service, self._input)
                known = self._hosts[name] = (key, host)
            hosts.append(known[1])
        for gone in self._hosts.keys() - set(names):
            del self._hosts[gone]
        default = self._built.get(self.options.default_service or "")
        default_service = default[0] if default is not None else None
        default_policy = default_service.policy if default_service is not None else None
        table = route_configuration_any(hosts, names, self.options, default_policy, default_service)
        return self._listener, Resource(TypeUrl.ROUTE, self.options.route_name, table)


class GrpcTranslator(IncrementalTranslator):
    """Proxyless gRPC's snapshots: per service a Listener named as its target, a
    RouteConfiguration, a Cluster and a ClusterLoadAssignment."""

    kind: ClassVar[ClientKind] = ClientKind.GRPC

    def _policy_part(self, service: Service) -> ServiceResources:
        """Listener (named as the target), RouteConfiguration and Cluster."""
        options = self.options
        cluster = grpc_cluster(
            service, options.connect_timeout_ms, load_reporting=options.load_reporting,
            load_metrics=options.load_metrics,
        )  # fmt: skip
        return (
            pack(TypeUrl.CLUSTER, service.name, cluster),
            pack(TypeUrl.LISTENER, service.name, grpc_listener(service)),
            pack(TypeUrl.ROUTE, service.name, grpc_route_configuration(service, self._input)),
        )

    def _endpoint_part(self, service: Service) -> ServiceResources:
        """The ClusterLoadAssignment (the same whatever the options)."""
        return (pack(TypeUrl.ENDPOINT, service.name, grpc_load_assignment(service)),)

    def _built_service(self, service: Service, policy_changed: bool) -> None:
        """Note (and warn once per new note) where gRPC clients will behave differently: on
        a new policy, and when the endpoints change (client-side WRR's localities)."""
        del policy_changed  # the endpoints count too
        notes = tuple(grpc_warnings(service))
        known = self.notes.get(service.name, ())
        for note in notes:
            if note not in known:
                log.warning("grpc_policy_approximated", service=service.name, note=note)
        if notes:
            self.notes[service.name] = notes
        else:
            self.notes.pop(service.name, None)
        _note_routes(self.notes, service, self._input, known)


_KINDS: dict[ClientKind, type[IncrementalTranslator]] = {
    ClientKind.ENVOY: EnvoyTranslator,
    ClientKind.GRPC: GrpcTranslator,
}


def translator_for(
    kind: ClientKind = ClientKind.ENVOY, options: TranslateOptions | None = None
) -> ClientTranslator:
    """The translator of `kind`'s snapshots."""
    return _KINDS[kind](options)


def translate(
    services: ServiceSet,
    options: TranslateOptions | None = None,
    client: ClientKind = ClientKind.ENVOY,
) -> TranslationResult:
    """One-shot translation (no memory between calls); see `translator_for` for the
    incremental form."""
    return translator_for(client, options).translate(services)
