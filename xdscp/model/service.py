"""The domain: services and their endpoints.

Pure data with validation and no protobuf. Every constructor checks its values and raises
`ValidationError` naming the field and the allowed range, so bad input is rejected where it
enters (a registration, a policy key, a CLI flag) and never reaches a proxy. A service's
balancing policy is `xdscp.model.policy`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.address import format_host_port
from xdscp.model.checks import UINT32_MAX, check_int, check_ip, check_service_name, choice
from xdscp.model.load import ReportedLoad
from xdscp.model.policy import BalancingPolicy
from xdscp.model.routes import RouteTable

MAX_PRIORITY = 127
_EMPTY: Mapping[str, str] = MappingProxyType({})


class Health(StrEnum):
    """Endpoint health, as Envoy understands it (UNKNOWN is treated as healthy)."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DEGRADED = "degraded"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True, order=True)
class Locality:
    """Where an endpoint runs; Envoy and gRPC weight and fail over by locality."""

    region: str = ""
    zone: str = ""
    sub_zone: str = ""

    def __str__(self) -> str:
        return "/".join((self.region, self.zone, self.sub_zone))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance of a service: an IP literal and port, with its weight and placement."""

    address: str
    port: int
    weight: int = 1
    locality: Locality = Locality()
    priority: int = 0
    health: Health = Health.HEALTHY
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    hash_key: str | None = None
    load: ReportedLoad | None = None  # its own, when it registers it (never sent to clients)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", check_ip("address", self.address))
        check_int("port", self.port, 1, 65535)
        check_int("weight", self.weight, 1, UINT32_MAX)
        check_int("priority", self.priority, 0, MAX_PRIORITY)
        if not isinstance(self.health, Health):
            object.__setattr__(self, "health", parse_health(self.health))
        if self.hash_key is not None and not (isinstance(self.hash_key, str) and self.hash_key):
            raise ValidationError(
                "hash_key", f"must be a non-empty string when set, got {self.hash_key!r}"
            )
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValidationError(
                    "metadata", f"keys and values must be strings, got {key!r}={value!r}"
                )
        object.__setattr__(self, "metadata", MappingProxyType(dict(sorted(self.metadata.items()))))
        if self.load is not None and not isinstance(self.load, ReportedLoad):
            raise ValidationError("load", f"must be a ReportedLoad, got {self.load!r}")

    @property
    def key(self) -> str:
        """`ip:port` (`[v6]:port`), the address string Envoy hashes and prints."""
        return format_host_port(self.address, self.port)

    def __str__(self) -> str:
        return self.key


def parse_health(value: object) -> Health:
    """Parse a health name, rejecting unknown values with the allowed set."""
    return choice(Health, "health", value)


@dataclass(frozen=True, slots=True)
class Service:
    """A named set of endpoints, the policy that balances across them and, optionally, the
    routes its requests take (None: every request to the service's own endpoints)."""

    name: str
    endpoints: tuple[Endpoint, ...] = ()
    policy: BalancingPolicy = BalancingPolicy()
    routes: RouteTable | None = None

    def __post_init__(self) -> None:
        check_service_name(self.name)
        ordered = tuple(sorted(self.endpoints, key=_endpoint_order))
        seen: set[tuple[str, int]] = set()
        for endpoint in ordered:
            ident = (endpoint.address, endpoint.port)
            if ident in seen:
                raise ValidationError("endpoints", f"{endpoint.key} is listed twice in {self.name}")
            seen.add(ident)
        object.__setattr__(self, "endpoints", ordered)
        if self.routes is not None and not isinstance(self.routes, RouteTable):
            raise ValidationError("routes", f"must be a RouteTable, got {self.routes!r}")


def _endpoint_order(endpoint: Endpoint) -> tuple[int, Locality, int, bytes, int]:
    ip = ipaddress.ip_address(endpoint.address)
    return (endpoint.priority, endpoint.locality, ip.version, ip.packed, endpoint.port)


ServiceSet = Mapping[str, Service]
"""The whole discovered world at one instant: service name → service."""


class ServiceUpdate(Mapping[str, Service]):
    """A source's complete service set that also names what changed since its previous one.

    Still the whole set (consumers may ignore `changed`); with the hint the pipeline skips
    comparing every service, so one change among ten thousand costs what it costs among a
    hundred. `changed` lists names added, replaced or removed; None means "not known".
    It wraps `services` without copying it: the source must never change that mapping
    afterwards (the etcd registry publishes persistent maps).
    """

    __slots__ = ("_services", "changed")

    def __init__(
        self, services: Mapping[str, Service], changed: frozenset[str] | None = None
    ) -> None:
        self._services = services
        self.changed = changed

    def __getitem__(self, name: str) -> Service:
        return self._services[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def get(self, name: str, default: Any = None) -> Any:
        """`Mapping.get` without the exception round trip."""
        return self._services.get(name, default)


def changed_names(services: ServiceSet) -> frozenset[str] | None:
    """The change hint a published set carries (see `ServiceUpdate`), None without one."""
    return services.changed if isinstance(services, ServiceUpdate) else None
