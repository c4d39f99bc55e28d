"""Resilience policies of a service: how clients react to failing, cold or draining backends.

Pure data with validation, like the rest of the model. Each policy is an optional part of a
`BalancingPolicy` (None = off); each is a frozen dataclass whose constructor checks its values
and raises `ValidationError` naming the field, so a bad policy is refused where it enters (an
etcd policy key, the static services file, a DNS declaration, `xdscp policy set`) and never
reaches a proxy. The ranges are the ones Envoy and gRPC accept (a value they would NACK is
refused here).

`from_mapping` builds a policy from the JSON / YAML form (unknown fields are refused with the
allowed set); `to_mapping` gives that form back, so what is stored reads back the same.
Durations are seconds (a number, or a string such as ``"250ms"``, ``"10s"``, ``"1m"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar, Self

from xdscp.errors import ValidationError
from xdscp.model.checks import UINT32_MAX, check_float, check_int

MAX_DURATION = 315_576_000_000.0  # protobuf Duration's largest value, in seconds
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# An HTTP path Envoy accepts as a header value: printable ASCII, starting with "/".
_HTTP_PATH = re.compile(r"/[\x21-\x7e]{0,1023}")
_GRPC_SERVICE = re.compile(r"[\x21-\x7e]{0,1024}")

ENVOY_RETRY_ON = frozenset(
    {"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream"}
)
GRPC_RETRY_ON = frozenset(
    {"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
)
RETRY_ON = ENVOY_RETRY_ON | GRPC_RETRY_ON


def parse_duration(name: str, value: object, *, positive: bool = False) -> float:
    """Seconds from a number or a `250ms` / `10s` / `1m` / `1h` string.

    `positive` refuses 0 (Envoy's `gt: 0` durations: intervals, timeouts of a check).
    """
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValidationError(
                name, f"must be seconds or a duration like 250ms, 10s, 1m, got {value!r}"
            )
        value = float(match.group(1)) * _UNITS[match.group(2)]
    seconds = check_float(name, value, 0.0, MAX_DURATION)
    if positive and seconds < 0.001:
        raise ValidationError(name, f"must be at least 1ms, got {value!r}")
    return seconds


def _optional_uint(name: str, value: object) -> int | None:
    return None if value is None else check_int(name, value, 0, UINT32_MAX)


class _Policy:
    """`from_mapping` / `to_mapping` shared by every resilience policy."""

    __slots__ = ()
    _nested: ClassVar[Mapping[str, type[_Policy]]] = {}

    @classmethod
    def from_mapping(cls, data: object, path: str) -> Self:
        """Build from the JSON / YAML form; errors name `path.field`."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(path, f"must be a mapping of fields, got {data!r}")
        allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ValidationError(path, f"unknown fields {unknown}; allowed: {', '.join(allowed)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            nested = cls._nested.get(key)
            if nested is None or value is None:
                values[key] = value
            else:
                values[key] = nested.from_mapping(value, f"{path}.{key}")
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ValidationError(f"{path}.{exc.field}", exc.message) from None

    def to_mapping(self) -> dict[str, Any]:
        """The JSON / YAML form (every field, so a stored policy is explicit)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Policy):
                value = value.to_mapping()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, StrEnum):
                value = str(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True)
class SuccessRateEjection(_Policy):
    """Eject a host whose success rate is `stdev_factor`/1000 deviations below the mean."""

    stdev_factor: int = 1900
    minimum_hosts: int = 5
    request_volume: int = 100
    enforcing: int = 100

    def __post_init__(self) -> None:
        check_int("stdev_factor", self.stdev_factor, 0, UINT32_MAX)
        check_int("minimum_hosts", self.minimum_hosts, 0, UINT32_MAX)
        check_int("request_volume", self.request_volume, 0, UINT32_MAX)
        check_int("enforcing", self.enforcing, 0, 100)


@dataclass(frozen=True, slots=True)
class FailurePercentageEjection(_Policy):
    """Eject a host whose failure percentage is at least `threshold`."""

    threshold: int = 85
    minimum_hosts: int = 5
    request_volume: int = 50
    enforcing: int = 100

    def __post_init__(self) -> None:
        check_int("threshold", self.threshold, 0, 100)
        check_int("minimum_hosts", self.minimum_hosts, 0, UINT32_MAX)
        check_int("request_volume", self.request_volume, 0, UINT32_MAX)
        check_int("enforcing", self.enforcing, 0, 100)


@dataclass(frozen=True, slots=True)
class OutlierDetection(_Policy):
    """Passive health: clients eject hosts that fail, for a growing time.

    `consecutive_5xx` / `consecutive_gateway_failure` (0 = off) are Envoy's; gRPC clients
    implement only `success_rate` and `failure_percentage`. Envoy ejects a host only while
    the ejected hosts, it included, stay within `max_ejection_percent` of the cluster (10 % of
    3 hosts: none) unless `always_eject_one_host` lets the first ejection through; gRPC
    (A50) ejects while fewer than `max_ejection_percent` are ejected, so its first ejection
    always happens unless the percent is 0.
    """

    _nested: ClassVar[Mapping[str, type[_Policy]]] = {
        "success_rate": SuccessRateEjection,
        "failure_percentage": FailurePercentageEjection,
    }

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 0
    success_rate: SuccessRateEjection | None = None
    failure_percentage: FailurePercentageEjection | None = None
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    always_eject_one_host: bool = False

    def __post_init__(self) -> None:
        check_int("consecutive_5xx", self.consecutive_5xx, 0, UINT32_MAX)
        check_int("consecutive_gateway_failure", self.consecutive_gateway_failure, 0, UINT32_MAX)
        for name, kind in self._nested.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                object.__setattr__(self, name, kind.from_mapping(value, name))
        set_ = object.__setattr__
        set_(self, "interval", parse_duration("interval", self.interval, positive=True))
        set_(
            self,
            "base_ejection_time",
            parse_duration("base_ejection_time", self.base_ejection_time, positive=True),
        )
        check_int("max_ejection_percent", self.max_ejection_percent, 0, 100)
        if not isinstance(self.always_eject_one_host, bool):
            raise ValidationError(
                "always_eject_one_host",
                f"must be true or false, got {self.always_eject_one_host!r}",
            )

    def ejection_note(self, hosts: int) -> str | None:
        """Why Envoy can never eject a host of a cluster of `hosts`, or None when it can.

        Envoy ejects only while `100 * (ejected + 1) / hosts <= max_ejection_percent`, so
        a first ejection needs `max_ejection_percent * hosts >= 100`, or
        `always_eject_one_host`. A warning, not an error: the endpoint count changes.
        """
        if hosts <= 0 or self.always_eject_one_host or self.max_ejection_percent * hosts >= 100:
            return None
        needed = -(-100 // hosts)  # ceil(100 / hosts)
        return (
            f"outlier_detection: max_ejection_percent {self.max_ejection_percent} lets Envoy"
            f" eject no host of {hosts} (one is {100 / hosts:.0f} %): set"
            f" always_eject_one_host, or max_ejection_percent {needed} or more"
        )


class HealthCheckKind(StrEnum):
    """How an active health check asks a backend."""

    HTTP = "http"
    GRPC = "grpc"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class HealthCheck(_Policy):
    """Active health checking: Envoy checks by itself; `control_plane` makes xdscp check too
    and mark failing endpoints UNHEALTHY in EDS for every client (gRPC clients check nothing).
    """

    kind: HealthCheckKind = HealthCheckKind.HTTP
    path: str = "/healthz"
    service_name: str = ""
    interval: float = 5.0
    timeout: float = 1.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    jitter: float = 0.0
    control_plane: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", HealthCheckKind(str(self.kind).lower()))
        except ValueError:
            allowed = ", ".join(k.value for k in HealthCheckKind)
            raise ValidationError("kind", f"must be one of {allowed}, got {self.kind!r}") from None
        if not isinstance(self.path, str) or not _HTTP_PATH.fullmatch(self.path):
            raise ValidationError("path", f"must be an HTTP path like /healthz, got {self.path!r}")
        if not isinstance(self.service_name, str) or not _GRPC_SERVICE.fullmatch(self.service_name):
            raise ValidationError(
                "service_name", f"must be printable ASCII, got {self.service_name!r}"
            )
        set_ = object.__setattr__
        set_(self, "interval", parse_duration("interval", self.interval, positive=True))
        set_(self, "timeout", parse_duration("timeout", self.timeout, positive=True))
        set_(self, "jitter", parse_duration("jitter", self.jitter))
        check_int("healthy_threshold", self.healthy_threshold, 1, 1000)
        check_int("unhealthy_threshold", self.unhealthy_threshold, 1, 1000)
        if not isinstance(self.control_plane, bool):
            raise ValidationError(
                "control_plane", f"must be true or false, got {self.control_plane!r}"
            )


@dataclass(frozen=True, slots=True)
class SlowStart(_Policy):
    """A new endpoint's weight ramps up over `window` (round robin and least request).

    Envoy's factor: max(min_weight_percent / 100, (t / window) ** (1 / aggression)).
    """

    window: float = 0.0
    aggression: float = 1.0
    min_weight_percent: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", parse_duration("window", self.window, positive=True))
        check_float("aggression", self.aggression, 0.0, 1000.0)
        if self.aggression <= 0:
            raise ValidationError("aggression", f"must be greater than 0, got {self.aggression}")
        check_float("min_weight_percent", self.min_weight_percent, 0.0, 100.0)


@dataclass(frozen=True, slots=True)
class CircuitBreakers(_Policy):
    """Limits per client and cluster (None = the client's default: Envoy 1024 / 1024 / 1024 /
    3; gRPC honours `max_requests` only)."""

    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            _optional_uint(f.name, getattr(self, f.name))


@dataclass(frozen=True, slots=True)
class RetryPolicy(_Policy):
    """Retries on the service's route: on what, how often, how long each try, what backoff."""

    retry_on: tuple[str, ...] = ("5xx",)
    num_retries: int = 1
    per_try_timeout: float | None = None
    backoff_base: float = 0.025
    backoff_max: float | None = None

    def __post_init__(self) -> None:
        retry_on = self.retry_on
        if isinstance(retry_on, str):
            retry_on = tuple(part.strip() for part in retry_on.split(","))
        if not isinstance(retry_on, list | tuple) or not retry_on:
            raise ValidationError("retry_on", f"must be a non-empty list, got {retry_on!r}")
        unknown = [r for r in retry_on if r not in RETRY_ON]
        if unknown:
            allowed = ", ".join(sorted(RETRY_ON))
            raise ValidationError("retry_on", f"unknown {unknown!r}; allowed: {allowed}")
        object.__setattr__(self, "retry_on", tuple(sorted(set(retry_on))))
        check_int("num_retries", self.num_retries, 0, 1000)
        if self.per_try_timeout is not None:
            seconds = parse_duration("per_try_timeout", self.per_try_timeout, positive=True)
            object.__setattr__(self, "per_try_timeout", seconds)
        base = parse_duration("backoff_base", self.backoff_base, positive=True)
        object.__setattr__(self, "backoff_base", base)
        if self.backoff_max is not None:
            most = parse_duration("backoff_max", self.backoff_max, positive=True)
            if most < base:
                raise ValidationError(
                    "backoff_max", f"must be at least backoff_base ({base}), got {most}"
                )
            object.__setattr__(self, "backoff_max", most)

    @property
    def effective_backoff_max(self) -> float:
        """`backoff_max`, or 10 x `backoff_base` as Envoy and gRPC default it."""
        return self.backoff_max if self.backoff_max is not None else 10 * self.backoff_base


Policy = _Policy  # the base of every part of a policy (`xdscp.model.adaptive` too)

RESILIENCE_POLICIES: Mapping[str, type[_Policy]] = {
    "outlier_detection": OutlierDetection,
    "health_check": HealthCheck,
    "slow_start": SlowStart,
    "circuit_breakers": CircuitBreakers,
    "retries": RetryPolicy,
}
"""The nested policies of `BalancingPolicy`, by field name."""
