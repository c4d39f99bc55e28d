"""ServiceSet → Snapshot for one client kind, rebuilding only the services that changed.

`ClientTranslator` is the seam the plane's pipeline uses, one object per client kind
(`EnvoyTranslator`, `GrpcTranslator`). `IncrementalTranslator` is what they share: per
service it keeps the serialized resources of its last translation, so an unchanged service
costs nothing (or one identity check) and its `Resource` objects (and their bytes) are
shared by every snapshot and every stream; each snapshot is derived from the previous one
(`Snapshot.updated`). A service whose translation fails keeps its last good resources, and
the failure is reported; other services are unaffected. A service whose routes name another
is translated again when that one comes or goes (its routes name only served services).
What differs per kind (which resources a service gets, notes on its policy, resources shared
by every service) is the subclass's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import structlog
from google.protobuf import any_pb2

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.errors import TranslationError
from xdscp.model import BalancingPolicy, ClientKind, RouteTable, Service, ServiceSet
from xdscp.translate.options import TranslateOptions

log = structlog.get_logger(__name__)

ServiceResources = tuple[Resource, ...]
PolicyKey = tuple[BalancingPolicy, RouteTable | None, frozenset[str]]
"""What a service's policy part depends on: its policy, routes and which route targets are
served."""


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


class ClientTranslator(Protocol):
    """One client kind's translation, remembering per-service results between calls."""

    @property
    def kind(self) -> ClientKind:
        """The kind of client the snapshots are for."""

    @property
    def notes(self) -> Mapping[str, tuple[str, ...]]:
        """Per service, how this kind's clients behave differently from its policy."""

    def translate(
        self, services: ServiceSet, changed: Collection[str] | None = None
    ) -> TranslationResult:
        """The snapshot for `services`; `changed` names every service that may differ from
        the previous call (None: compare them all)."""


class IncrementalTranslator:
    """The incremental translation every client kind shares; subclasses say what a service
    becomes (`_policy_part`, `_endpoint_part`) and what every service shares (`_shared`)."""

    kind: ClassVar[ClientKind]

    def __init__(self, options: TranslateOptions | None = None) -> None:
        self.options = options or TranslateOptions()
        self._input: dict[str, Service] = {}
        self._built: dict[str, tuple[Service, ServiceResources]] = {}  # last good, per name
        self._rejected: dict[str, Rejection] = {}
        self._snapshot: Snapshot | None = None
        self._policy_parts: dict[str, tuple[PolicyKey, ServiceResources]] = {}
        self._routed: dict[str, frozenset[str]] = {}  # service → the services its routes name
        # service → how this client kind will behave differently from the policy's name
        self.notes: dict[str, tuple[str, ...]] = {}

    def _policy_part(self, service: Service) -> ServiceResources:
        """What depends on the service's name and policy only."""
        raise NotImplementedError

    def _endpoint_part(self, service: Service) -> ServiceResources:
        """What depends on the endpoints."""
        raise NotImplementedError

    def _built_service(self, service: Service, policy_changed: bool) -> None:
        """A service was translated (its policy part anew when `policy_changed`)."""

    def _shared(self, names_changed: bool) -> ServiceResources:
        """Resources every service shares, when the set of names changed (or a name's part
        of them did); none by default."""
        del names_changed
        return ()

    def _shared_changed(self, name: str) -> bool:
        """True when `name`'s part of the shared resources changed; never by default."""
        del name
        return False

    def present_targets(self, service: Service) -> frozenset[str]:
        """The services `service`'s routes name that are in the current input."""
        if service.routes is None:
            return frozenset()
        return frozenset(t for t in service.routes.targets if t in self._input)

    def policy_key(self, service: Service) -> PolicyKey:
        """What the service's policy part (and its route) depends on."""
        return (service.policy, service.routes, self.present_targets(service))

    def _build(self, service: Service) -> ServiceResources:
        """The service's resources; the policy part is reused while the policy (and routes)
        are unchanged (an endpoint change re-translates only the endpoint part)."""
        known = self._policy_parts.get(service.name)
        key = self.policy_key(service)
        if known is not None and known[0] == key:
            policy_part, fresh = known[1], False
        else:
            policy_part, fresh = self._policy_part(service), True
            self._policy_parts[service.name] = (key, policy_part)
        self._built_service(service, fresh)
        return policy_part + self._endpoint_part(service)

    def _apply(
        self, name: str, service: Service, *, force: bool = False
    ) -> tuple[ServiceResources, Rejection | None]:
        """Translate one changed service (with `force`, even an unchanged one: a service its
        routes name came or went); on failure keep its last good resources."""
        known = self._built.get(name)
        if known is not None and known[0] == service and not force:
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
        if service.routes is not None:
            self._routed[name] = service.routes.targets
        else:
            self._routed.pop(name, None)
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

    def _remove(self, name: str, removals: dict[TypeUrl, list[str]]) -> bool:
        """Forget a removed service; True when it had been translated."""
        self._rejected.pop(name, None)
        gone = self._built.pop(name, None)
        self._policy_parts.pop(name, None)
        self._routed.pop(name, None)
        self.notes.pop(name, None)
        for resource in gone[1] if gone is not None else ():
            removals.setdefault(resource.type_url, []).append(resource.name)
        return gone is not None

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
        came_or_went = {*removed, *(n for n in changed_list if n not in self._built)}
        dependents = sorted(
            name
            for name, targets in self._routed.items()
            if targets & came_or_went and name not in removed and name in services
        )
        forced = set(dependents) - set(changed_list)
        changed_list = sorted({*changed_list, *dependents})
        upserts: list[Resource] = []
        removals: dict[TypeUrl, list[str]] = {}
        rejected: list[Rejection] = []
        names_changed = self._snapshot is None
        for name in removed:
            names_changed |= self._remove(name, removals)
        for name in changed_list:
            known = name in self._built
            built, rejection = self._apply(name, services[name], force=name in forced)
            names_changed |= known != (name in self._built) or self._shared_changed(name)
            upserts.extend(built)
            if rejection is not None:
                rejected.append(rejection)
        upserts.extend(self._shared(names_changed))
        if self._snapshot is None:
            self._snapshot = Snapshot.of(upserts)
        else:
            self._snapshot = self._snapshot.updated(upserts, removals)
        return TranslationResult(self._snapshot, tuple(rejected))
