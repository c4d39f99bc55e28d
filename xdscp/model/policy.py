"""A service's balancing policy: the strategy, its hash inputs and every setting the
algorithms read, with the resilience policies (`xdscp.model.resilience`) as optional parts.

Pure data with validation, like the rest of the model: a bad value raises `ValidationError`
naming the field and the allowed range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.adaptive import AdaptiveSettings
from xdscp.model.checks import UINT32_MAX, check_float, check_int, choice, is_prime
from xdscp.model.load_weights import ClientSideWrr
from xdscp.model.resilience import (
    RESILIENCE_POLICIES,
    CircuitBreakers,
    HealthCheck,
    OutlierDetection,
    Policy,
    RetryPolicy,
    SlowStart,
    parse_duration,
)

ENVOY_MIN_RING = 1
ENVOY_MAX_RING = 8_388_608
MAGLEV_MAX_TABLE = 5_000_011
DEFAULT_MAGLEV_TABLE = 65_537
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110 token


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
    CLIENT_SIDE_WEIGHTED_ROUND_ROBIN = "client_side_weighted_round_robin"


HASHING_POLICIES = frozenset(
    {LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH, LbPolicy.WEIGHTED_RANDOM}
)

_HASH_ON_POLICIES = frozenset({LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH})
_SLOW_START_POLICIES = frozenset(
    {
        LbPolicy.ROUND_ROBIN,
        LbPolicy.WEIGHTED_ROUND_ROBIN,
        LbPolicy.LEAST_REQUEST,
        LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN,
    }
)
ADAPTIVE_POLICIES = frozenset(LbPolicy) - {
    LbPolicy.ROUND_ROBIN,
    LbPolicy.RANDOM,
    LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN,  # the clients weigh by their own reports
}
"""The policies whose clients honour endpoint weights: where `adaptive_weights` is valid."""

POLICY_PARTS: dict[str, type[Policy]] = {
    **RESILIENCE_POLICIES,
    "client_side_wrr": ClientSideWrr,
    "adaptive_weights": AdaptiveSettings,
}
"""Every nested part of `BalancingPolicy`, by field name (None = off): the resilience
policies, client-side weighted round robin's settings and the adaptive weights' (each with
`from_mapping` / `to_mapping`)."""


class HashFunction(StrEnum):
    """Ring hash key functions Envoy offers."""

    XX_HASH = "xx_hash"
    MURMUR_HASH_2 = "murmur_hash_2"


class HashInput(StrEnum):
    """What a request hash is computed from."""

    HEADER = "header"
    COOKIE = "cookie"
    SOURCE_IP = "source_ip"
    QUERY_PARAMETER = "query_parameter"


@dataclass(frozen=True, slots=True)
class HashOn:
    """One input of the request hash. `name` is the header, cookie or query parameter name."""

    source: HashInput
    name: str = ""
    terminal: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.source, HashInput):
            object.__setattr__(self, "source", parse_hash_input(self.source))
        if self.source is HashInput.SOURCE_IP:
            if self.name:
                raise ValidationError("hash_on.name", "source_ip takes no name")
        elif not isinstance(self.name, str) or not _TOKEN.fullmatch(self.name):
            raise ValidationError(
                "hash_on.name", f"{self.source} needs a name (1-256 token characters)"
            )

    @classmethod
    def parse(cls, text: str) -> HashOn:
        """Parse `header:x-user`, `cookie:session`, `query_parameter:u` or `source_ip`."""
        source, _, name = text.partition(":")
        return cls(parse_hash_input(source.strip()), name.strip())

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" if self.name else str(self.source)


def parse_hash_input(value: object) -> HashInput:
    """Parse a hash source name, rejecting unknown values with the allowed set."""
    return choice(HashInput, "hash_on.source", value, dashes=True)


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
    client_side_wrr: ClientSideWrr | None = None
    adaptive_weights: AdaptiveSettings | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.lb, LbPolicy):
            object.__setattr__(self, "lb", parse_lb_policy(self.lb))
        object.__setattr__(self, "upstream_protocol", _upstream(self.upstream_protocol))
        object.__setattr__(self, "hash_function", HashFunction(self.hash_function))
        object.__setattr__(self, "hash_on", tuple(self.hash_on))
        check_int("min_ring_size", self.min_ring_size, ENVOY_MIN_RING, ENVOY_MAX_RING)
        check_int("max_ring_size", self.max_ring_size, ENVOY_MIN_RING, ENVOY_MAX_RING)
        if self.min_ring_size > self.max_ring_size:
            raise ValidationError(
                "min_ring_size",
                f"must not exceed max_ring_size ({self.max_ring_size}), got {self.min_ring_size}",
            )
        check_int("maglev_table_size", self.maglev_table_size, 2, MAGLEV_MAX_TABLE)
        if not is_prime(self.maglev_table_size):
            raise ValidationError(
                "maglev_table_size",
                f"must be a prime in [2, {MAGLEV_MAX_TABLE}], got {self.maglev_table_size}",
            )
        check_int("choice_count", self.choice_count, 2, 100)
        check_float("active_request_bias", self.active_request_bias, 0.0, 100.0)
        check_int("overprovisioning_factor", self.overprovisioning_factor, 1, 100_000)
        check_float("panic_threshold", self.panic_threshold, 0.0, 100.0)
        if not isinstance(self.locality_weighted, bool):
            raise ValidationError(
                "locality_weighted", f"must be true or false, got {self.locality_weighted!r}"
            )
        self._check_hash_on()
        self._check_resilience()

    def _check_resilience(self) -> None:
        for name, kind in POLICY_PARTS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                object.__setattr__(self, name, kind.from_mapping(value, name))
        if self.timeout is not None:
            object.__setattr__(self, "timeout", parse_duration("timeout", self.timeout))
        if self.hash_balance_factor is not None:
            check_int("hash_balance_factor", self.hash_balance_factor, 100, UINT32_MAX)
            if self.lb not in _HASH_ON_POLICIES:
                raise ValidationError(
                    "hash_balance_factor", f"is used by ring_hash and maglev only, not {self.lb}"
                )
        check = self.health_check
        if check is not None and check.kind == "grpc" and self.upstream_protocol != "http2":
            raise ValidationError(
                "health_check.kind",
                "grpc health checks need upstream_protocol http2 (Envoy refuses the cluster)",
            )
        if self.slow_start is not None and self.lb not in _SLOW_START_POLICIES:
            raise ValidationError(
                "slow_start",
                f"is used by the round robins and least_request only, not {self.lb}",
            )
        self._check_client_side_wrr()
        self._check_adaptive()

    def _check_client_side_wrr(self) -> None:
        """`client_side_wrr` belongs to client_side_weighted_round_robin, which always has it
        (the defaults when unset), so a stored policy states every setting the clients use."""
        if self.lb is not LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN:
            if self.client_side_wrr is not None:
                raise ValidationError(
                    "client_side_wrr",
                    f"is used by client_side_weighted_round_robin only, not {self.lb}",
                )
        elif self.client_side_wrr is None:
            object.__setattr__(self, "client_side_wrr", ClientSideWrr())

    def _check_adaptive(self) -> None:
        if self.adaptive_weights is not None and self.lb not in ADAPTIVE_POLICIES:
            allowed = ", ".join(sorted(ADAPTIVE_POLICIES))
            raise ValidationError(
                "adaptive_weights",
                f"needs a policy whose clients honour endpoint weights ({allowed}), not {self.lb}",
            )

    def to_mapping(self) -> dict[str, Any]:
        """The JSON / YAML form: every field, nested policies as mappings, hash_on as text."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in POLICY_PARTS and value is not None:
                value = value.to_mapping()
            elif f.name == "hash_on":
                value = [str(h) for h in value]
            elif isinstance(value, StrEnum):
                value = str(value)
            out[f.name] = value
        return out

    def _check_hash_on(self) -> None:
        if self.lb is LbPolicy.SOURCE_IP_HASH and self.hash_on != (HashOn(HashInput.SOURCE_IP),):
            if self.hash_on:
                raise ValidationError(
                    "hash_on", "source_ip_hash always hashes on source_ip; leave it unset"
                )
            object.__setattr__(self, "hash_on", (HashOn(HashInput.SOURCE_IP),))
        if self.hash_on and self.lb not in _HASH_ON_POLICIES:
            raise ValidationError("hash_on", f"is used by ring_hash and maglev only, not {self.lb}")

    @property
    def is_hashing(self) -> bool:
        """True when the service is served by a consistent-hash balancer (ring or Maglev)."""
        return self.lb in HASHING_POLICIES


def _upstream(value: object) -> UpstreamProtocol:
    return choice(UpstreamProtocol, "upstream_protocol", value)


def parse_lb_policy(value: object) -> LbPolicy:
    """Parse a policy name, rejecting unknown values with the allowed set."""
    return choice(LbPolicy, "lb", value, dashes=True)
