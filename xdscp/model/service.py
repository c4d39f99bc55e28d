"""The domain: services, their endpoints, and each service's balancing policy.

Pure data with validation and no protobuf. Every constructor checks its values and raises
`ValidationError` naming the field and the allowed range, so bad input is rejected where it
enters (a registration, a policy key, a CLI flag) and never reaches a proxy.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from xdscp.errors import ValidationError
from xdscp.model.address import format_host_port
from xdscp.model.resilience import (
    RESILIENCE_POLICIES,
    CircuitBreakers,
    HealthCheck,
    OutlierDetection,
    RetryPolicy,
    SlowStart,
    parse_duration,
)

UINT32_MAX = 0xFFFFFFFF
MAX_PRIORITY = 127
ENVOY_MIN_RING = 1
ENVOY_MAX_RING = 8_388_608
MAGLEV_MAX_TABLE = 5_000_011
DEFAULT_MAGLEV_TABLE = 65_537
# Matched with `fullmatch` (never `match` with `$`, which also matches before a final "\n").
_SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110 token
_EMPTY: Mapping[str, str] = MappingProxyType({})


class Health(StrEnum):
    """Endpoint health, as Envoy understands it (UNKNOWN is treated as healthy)."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DEGRADED = "degraded"
    DRAINING = "draining"


class LbPolicy(StrEnum):
    """Every balancing strategy a service can ask for."""

    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted_random"
    LEAST_REQUEST = "least_request"
    RING_HASH = "ring_hash"
    MAGLEV = "maglev"
    SOURCE_IP_HASH = "source_ip_hash"


HASHING_POLICIES = frozenset(
    {LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH, LbPolicy.WEIGHTED_RANDOM}
)

_HASH_ON_POLICIES = frozenset({LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH})
_SLOW_START_POLICIES = frozenset(
    {LbPolicy.ROUND_ROBIN, LbPolicy.WEIGHTED_ROUND_ROBIN, LbPolicy.LEAST_REQUEST}
)


class HashFunction(StrEnum):
    """Ring hash key functions Envoy offers."""

    XX_HASH = "xx_hash"
    MURMUR_HASH_2 = "murmur_hash_2"


class HashSource(StrEnum):
    """What a request hash is computed from."""

    HEADER = "header"
    COOKIE = "cookie"
    SOURCE_IP = "source_ip"
    QUERY_PARAMETER = "query_parameter"


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError(field_name, message)


E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], field_name: str, value: object, *, dashes: bool = False) -> E:
    """`value` as one of `kind`'s values, any case (with `dashes`, `-` reads as `_`);
    an unknown value is refused with the allowed set."""
    text = str(value).lower()
    try:
        return kind(text.replace("-", "_") if dashes else text)
    except ValueError:
        raise _fail(field_name, f"must be one of {', '.join(kind)}, got {value!r}") from None


def check_int(field_name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an int in [low, high], else raise naming the field and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field_name, f"must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise _fail(field_name, f"must be in [{low}, {high}], got {value}")
    return value


def check_float(field_name: str, value: object, low: float, high: float) -> float:
    """Return `value` as a float if it is a finite number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(field_name, f"must be a number in [{low}, {high}], got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(field_name, f"must be in [{low}, {high}], got {value}")
    return number


def is_prime(n: int) -> bool:
    """Deterministic primality for the table sizes Envoy accepts (n <= 5,000,011)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def check_ip(field_name: str, value: object) -> str:
    """Return the normalised IP literal; hostnames are rejected (Envoy and gRPC NACK them)."""
    if not isinstance(value, str):
        raise _fail(field_name, f"must be an IPv4 or IPv6 literal, got {value!r}")
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise _fail(field_name, f"must be an IPv4 or IPv6 literal, got {value!r}") from None


def check_service_name(value: object, field_name: str = "service") -> str:
    """Service names double as cluster names and gRPC targets: letters, digits, . _ -."""
    if not isinstance(value, str) or not _SERVICE_NAME.fullmatch(value):
        raise _fail(
            field_name,
            "must be 1-202 characters of letters, digits, '.', '_', '-', "
            f"starting and ending with a letter or digit, got {value!r}",
        )
    return value


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", check_ip("address", self.address))
        check_int("port", self.port, 1, 65535)
        check_int("weight", self.weight, 1, UINT32_MAX)
        check_int("priority", self.priority, 0, MAX_PRIORITY)
        if not isinstance(self.health, Health):
            object.__setattr__(self, "health", parse_health(self.health))
        if self.hash_key is not None and not (isinstance(self.hash_key, str) and self.hash_key):
            raise _fail("hash_key", f"must be a non-empty string when set, got {self.hash_key!r}")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise _fail("metadata", f"keys and values must be strings, got {key!r}={value!r}")
        object.__setattr__(self, "metadata", MappingProxyType(dict(sorted(self.metadata.items()))))

    @property
    def key(self) -> str:
        """`ip:port` (`[v6]:port`), the address string Envoy hashes and prints."""
        return format_host_port(self.address, self.port)

    def __str__(self) -> str:
        return self.key


def parse_health(value: object) -> Health:
    """Parse a health name, rejecting unknown values with the allowed set."""
    return _choice(Health, "health", value)


@dataclass(frozen=True, slots=True)
class HashOn:
    """One input of the request hash. `name` is the header, cookie or query parameter name."""

    source: HashSource
    name: str = ""
    terminal: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.source, HashSource):
            object.__setattr__(self, "source", parse_hash_source(self.source))
        if self.source is HashSource.SOURCE_IP:
            if self.name:
                raise _fail("hash_on.name", "source_ip takes no name")
        elif not isinstance(self.name, str) or not _TOKEN.fullmatch(self.name):
            raise _fail("hash_on.name", f"{self.source} needs a name (1-256 token characters)")

    @classmethod
    def parse(cls, text: str) -> HashOn:
        """Parse `header:x-user`, `cookie:session`, `query_parameter:u` or `source_ip`."""
        source, _, name = text.partition(":")
        return cls(parse_hash_source(source.strip()), name.strip())

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" if self.name else str(self.source)


def parse_hash_source(value: object) -> HashSource:
    """Parse a hash source name, rejecting unknown values with the allowed set."""
    return _choice(HashSource, "hash_on.source", value, dashes=True)


class UpstreamProtocol(StrEnum):
    """How a proxy speaks to the service's endpoints (gRPC backends need HTTP/2)."""

    HTTP1 = "http1"
    HTTP2 = "http2"


@dataclass(frozen=True, slots=True)
class BalancingPolicy:
    """How one service's traffic is spread over its endpoints."""

    lb: LbPolicy = LbPolicy.ROUND_ROBIN
    hash_on: tuple[HashOn, ...] = ()
    hash_function: HashFunction = HashFunction.XX_HASH
    min_ring_size: int = 1024
    max_ring_size: int = ENVOY_MAX_RING
    maglev_table_size: int = DEFAULT_MAGLEV_TABLE
    choice_count: int = 2
    active_request_bias: float = 1.0
    overprovisioning_factor: int = 140
    panic_threshold: float = 50.0
    locality_weighted: bool = False
    upstream_protocol: UpstreamProtocol = UpstreamProtocol.HTTP1
    outlier_detection: OutlierDetection | None = None
    health_check: HealthCheck | None = None
    slow_start: SlowStart | None = None
    circuit_breakers: CircuitBreakers | None = None
    retries: RetryPolicy | None = None
    timeout: float | None = None
    hash_balance_factor: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.lb, LbPolicy):
            object.__setattr__(self, "lb", parse_lb_policy(self.lb))
        object.__setattr__(self, "upstream_protocol", _upstream(self.upstream_protocol))
        object.__setattr__(self, "hash_function", HashFunction(self.hash_function))
        object.__setattr__(self, "hash_on", tuple(self.hash_on))
        check_int("min_ring_size", self.min_ring_size, ENVOY_MIN_RING, ENVOY_MAX_RING)
        check_int("max_ring_size", self.max_ring_size, ENVOY_MIN_RING, ENVOY_MAX_RING)
        if self.min_ring_size > self.max_ring_size:
            raise _fail(
                "min_ring_size",
                f"must not exceed max_ring_size ({self.max_ring_size}), got {self.min_ring_size}",
            )
        check_int("maglev_table_size", self.maglev_table_size, 2, MAGLEV_MAX_TABLE)
        if not is_prime(self.maglev_table_size):
            raise _fail(
                "maglev_table_size",
                f"must be a prime in [2, {MAGLEV_MAX_TABLE}], got {self.maglev_table_size}",
            )
        check_int("choice_count", self.choice_count, 2, 100)
        check_float("active_request_bias", self.active_request_bias, 0.0, 100.0)
        check_int("overprovisioning_factor", self.overprovisioning_factor, 1, 100_000)
        check_float("panic_threshold", self.panic_threshold, 0.0, 100.0)
        if not isinstance(self.locality_weighted, bool):
            raise _fail(
                "locality_weighted", f"must be true or false, got {self.locality_weighted!r}"
            )
        self._check_hash_on()
        self._check_resilience()

    def _check_resilience(self) -> None:
        for name, kind in RESILIENCE_POLICIES.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                object.__setattr__(self, name, kind.from_mapping(value, name))
        if self.timeout is not None:
            object.__setattr__(self, "timeout", parse_duration("timeout", self.timeout))
        if self.hash_balance_factor is not None:
            check_int("hash_balance_factor", self.hash_balance_factor, 100, UINT32_MAX)
            if self.lb not in _HASH_ON_POLICIES:
                raise _fail(
                    "hash_balance_factor", f"is used by ring_hash and maglev only, not {self.lb}"
                )
        check = self.health_check
        if check is not None and check.kind == "grpc" and self.upstream_protocol != "http2":
            raise _fail(
                "health_check.kind",
                "grpc health checks need upstream_protocol http2 (Envoy refuses the cluster)",
            )
        if self.slow_start is not None and self.lb not in _SLOW_START_POLICIES:
            raise _fail(
                "slow_start", f"is used by round robin and least_request only, not {self.lb}"
            )

    def to_mapping(self) -> dict[str, Any]:
        """The JSON / YAML form: every field, nested policies as mappings, hash_on as text."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in RESILIENCE_POLICIES and value is not None:
                value = value.to_mapping()
            elif f.name == "hash_on":
                value = [str(h) for h in value]
            elif isinstance(value, StrEnum):
                value = str(value)
            out[f.name] = value
        return out

    def _check_hash_on(self) -> None:
        if self.lb is LbPolicy.SOURCE_IP_HASH and self.hash_on != (HashOn(HashSource.SOURCE_IP),):
            if self.hash_on:
                raise _fail("hash_on", "source_ip_hash always hashes on source_ip; leave it unset")
            object.__setattr__(self, "hash_on", (HashOn(HashSource.SOURCE_IP),))
        if self.hash_on and self.lb not in _HASH_ON_POLICIES:
            raise _fail("hash_on", f"is used by ring_hash and maglev only, not {self.lb}")

    @property
    def is_hashing(self) -> bool:
        """True when the service is served by a consistent-hash balancer (ring or Maglev)."""
        return self.lb in HASHING_POLICIES


def _upstream(value: object) -> UpstreamProtocol:
    return _choice(UpstreamProtocol, "upstream_protocol", value)


def parse_lb_policy(value: object) -> LbPolicy:
    """Parse a policy name, rejecting unknown values with the allowed set."""
    return _choice(LbPolicy, "lb", value, dashes=True)


@dataclass(frozen=True, slots=True)
class Service:
    """A named set of endpoints and the policy that balances across them."""

    name: str
    endpoints: tuple[Endpoint, ...] = ()
    policy: BalancingPolicy = BalancingPolicy()

    def __post_init__(self) -> None:
        check_service_name(self.name)
        ordered = tuple(sorted(self.endpoints, key=_endpoint_order))
        seen: set[tuple[str, int]] = set()
        for endpoint in ordered:
            ident = (endpoint.address, endpoint.port)
            if ident in seen:
                raise _fail("endpoints", f"{endpoint.key} is listed twice in {self.name}")
            seen.add(ident)
        object.__setattr__(self, "endpoints", ordered)


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
