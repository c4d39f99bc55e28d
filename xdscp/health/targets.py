"""What to check, and what the verdicts do to the services: sans I/O.

`targets_of` lists the endpoints of every service whose policy has
`health_check.control_plane: true`. `HealthOverlay` keeps the merged services with the
verdicts applied: an endpoint registered HEALTHY whose verdict is UNHEALTHY is served
UNHEALTHY to every client. It never removes an endpoint, never touches one registered
otherwise (draining, degraded, unhealthy), and never leaves a service without a healthy
endpoint it had: when every endpoint it would serve fails its checks, none is marked (fail
open; Envoy would balance over all of them in panic mode anyway, and gRPC, which has no
panic mode, would fail every RPC on an empty cluster).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from xdscp.health.machine import Thresholds, Verdict
from xdscp.model import Endpoint, Health, HealthCheck, Service, ServiceSet

TargetKey = tuple[str, str]
"""(service name, endpoint `ip:port`)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to check and how."""

    service: str
    address: str
    port: int
    check: HealthCheck

    @property
    def key(self) -> TargetKey:
        """(service, `ip:port`): the endpoint's identity across checks and replicas."""
        return self.service, Endpoint(self.address, self.port).key

    @property
    def thresholds(self) -> Thresholds:
        """The check's thresholds."""
        return Thresholds(self.check.healthy_threshold, self.check.unhealthy_threshold)


def check_of(service: Service) -> HealthCheck | None:
    """The service's health check when xdscp itself must run it, else None."""
    check = service.policy.health_check
    return check if check is not None and check.control_plane else None


def targets_of(services: ServiceSet, names: Iterable[str] | None = None) -> Iterator[Target]:
    """The endpoints xdscp checks, of `names` (every service when None)."""
    for name in services if names is None else names:
        service = services.get(name)
        check = None if service is None else check_of(service)
        if service is None or check is None:
            continue
        for endpoint in service.endpoints:
            yield Target(name, endpoint.address, endpoint.port, check)


def with_verdicts(service: Service, verdicts: Mapping[str, Verdict]) -> tuple[Service, bool]:
    """`service` with its failing endpoints UNHEALTHY, and whether it failed open (every
    endpoint it serves is failing, so none is marked). `verdicts`: endpoint key -> verdict."""
    failing = {
        e.key
        for e in service.endpoints
        if e.health is Health.HEALTHY and verdicts.get(e.key) is Verdict.UNHEALTHY
    }
    if not failing:
        return service, False
    serving = sum(1 for e in service.endpoints if e.health is Health.HEALTHY)
    if len(failing) == serving:
        return service, True
    endpoints = tuple(
        dataclasses.replace(e, health=Health.UNHEALTHY) if e.key in failing else e
        for e in service.endpoints
    )
    return dataclasses.replace(service, endpoints=endpoints), False


class _Served(Mapping[str, Service]):
    """The merged services, with the re-derived ones in their place (no copy of the set)."""

    __slots__ = ("_merged", "_overrides")

    def __init__(self, merged: ServiceSet, overrides: Mapping[str, Service]) -> None:
        self._merged, self._overrides = merged, overrides

    def __getitem__(self, name: str) -> Service:
        found = self._overrides.get(name)
        return found if found is not None else self._merged[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged)

    def __len__(self) -> int:
        return len(self._merged)

    def __contains__(self, name: object) -> bool:
        return name in self._merged


class HealthOverlay:
    """The merged services with the verdicts applied, kept up to date incrementally.

    `update(merged, names)` follows the merged set (`names`: what changed, None: anything);
    `set_verdict` records one endpoint's verdict and says whether its service's served form
    may have changed. `services` is what the translator reads: the merged set itself, with
    only the services that have failing endpoints replaced.
    """

    def __init__(self) -> None:
        self.failed_open: set[str] = set()
        self._merged: ServiceSet = {}
        self._overrides: dict[str, Service] = {}
        self._verdicts: dict[str, dict[str, Verdict]] = {}  # service -> endpoint -> verdict
        self.services: ServiceSet = _Served(self._merged, self._overrides)

    def update(self, merged: ServiceSet, names: Iterable[str] | None) -> None:
        """Follow `merged` for `names` (every name when None)."""
        if merged is not self._merged:
            self._merged = merged
            self.services = _Served(merged, self._overrides)
        judged = self._verdicts.keys() | self._overrides.keys()
        for name in judged if names is None else judged.intersection(names):
            self._refresh(name)

    def set_verdict(self, service: str, endpoint: str, verdict: Verdict | None) -> bool:
        """Record (None: forget) one verdict; True when the service's served form changed."""
        current = self._verdicts.get(service, {})
        if current.get(endpoint) == verdict:
            return False
        if verdict is None:
            current.pop(endpoint, None)
        else:
            current[endpoint] = verdict
        if current:
            self._verdicts[service] = current
        else:
            self._verdicts.pop(service, None)
        before = self.services.get(service)
        self._refresh(service)
        return self.services.get(service) is not before

    def verdict(self, key: TargetKey) -> Verdict:
        """One endpoint's recorded verdict (UNKNOWN when none)."""
        return self._verdicts.get(key[0], {}).get(key[1], Verdict.UNKNOWN)

    def verdicts(self) -> dict[str, dict[str, Verdict]]:
        """Every recorded verdict: service -> endpoint -> verdict (a copy)."""
        return {name: dict(found) for name, found in self._verdicts.items()}

    def _refresh(self, name: str) -> None:
        self.failed_open.discard(name)
        self._overrides.pop(name, None)
        service = self._merged.get(name)
        verdicts = self._verdicts.get(name)
        if service is None or not verdicts or check_of(service) is None:
            return
        served, failed_open = with_verdicts(service, verdicts)
        if failed_open:
            self.failed_open.add(name)
        if served is not service:
            self._overrides[name] = served
