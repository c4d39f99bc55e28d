"""A service's routes: an ordered list of (match, action), the first match wins.

Pure data with validation, like the policy: every constructor checks its values and raises
`ValidationError` naming the field (`routes[2].match.headers[0].regex`) and what is allowed,
with the limits Envoy and gRPC accept, so a table a client would NACK never leaves xdscp.

The mapping form (YAML / JSON; `RouteTable.from_list` / `to_list`; matches in
`xdscp.model.matches`)::

    - match: {prefix: /api/, headers: [{name: x-canary, exact: "1"}]}
      cluster: web-v2
    - match: {grpc: {service: echo.Echo, method: Slow}}
      cluster: web
      timeout: 2s
      fault: {abort: {http_status: 503, percent: 10}}
    - split: {web: 90, web-v2: 10}          # no match: every request (the default route)

A match is one path form (`prefix`, `path`, `regex`, or `grpc: {service, method}`, sugar for
the prefix `/service/` or the path `/service/method`; none: every path), `case_sensitive`
(default true) and `headers`, each `{name, <exact|prefix|suffix|regex|present|range>,
invert}`. An action is `cluster` (a service name) or `split` (service name: weight, weights
summing to 1..4294967295), with optional `timeout`, `max_stream_duration`, `retries` (the
policy's `RetryPolicy` form, replacing the service's for this route) and `fault` (`delay`
`{fixed, percent}`, `abort` `{http_status | grpc_status, percent}`, `max_active_faults`).

A table whose last route does not match every request gets one more, appended when
translated: every other request goes to the service itself (`with_default`). A route after a
catch-all could never match and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.checks import UINT32_MAX, check_float, check_int, check_service_name
from xdscp.model.matches import RouteMatch, mapping_of, short
from xdscp.model.resilience import RetryPolicy, parse_duration

MAX_ROUTES = 256
"""Routes per service: far above what a service needs, far below a RouteConfiguration that
would slow every client's matching (each request walks the list)."""
MAX_SPLIT = 64
_EVERY_REQUEST = RouteMatch()  # frozen: one shared default


def _percent(path: str, value: object) -> float:
    return check_float(path, value, 0.0, 100.0)


@dataclass(frozen=True, slots=True)
class Fault:
    """Fault injection on a route: a fixed `delay` for `delay_percent` % of requests, an
    abort (`http_status` or `grpc_status`) for `abort_percent` %, at most
    `max_active_faults` at once (None: no limit)."""

    delay: float | None = None
    delay_percent: float = 100.0
    http_status: int | None = None
    grpc_status: int | None = None
    abort_percent: float = 100.0
    max_active_faults: int | None = None

    def __post_init__(self) -> None:
        if self.delay is not None:
            object.__setattr__(self, "delay", parse_duration("delay.fixed", self.delay))
        object.__setattr__(self, "delay_percent", _percent("delay.percent", self.delay_percent))
        object.__setattr__(self, "abort_percent", _percent("abort.percent", self.abort_percent))
        if self.http_status is not None and self.grpc_status is not None:
            raise ValidationError("abort", "takes http_status or grpc_status, not both")
        if self.http_status is not None:
            check_int("abort.http_status", self.http_status, 200, 599)  # Envoy: [200, 600)
        if self.grpc_status is not None:
            check_int("abort.grpc_status", self.grpc_status, 1, 16)  # 0 would be no fault
        if self.max_active_faults is not None:
            check_int("max_active_faults", self.max_active_faults, 0, UINT32_MAX)
        if self.delay is None and not self.aborts:
            raise ValidationError("fault", "needs a delay, an abort or both")

    @property
    def aborts(self) -> bool:
        """True when the fault aborts requests."""
        return self.http_status is not None or self.grpc_status is not None

    @classmethod
    def from_mapping(cls, data: object, path: str) -> Fault:
        """`{delay: {fixed: 1s, percent: 50}, abort: {http_status: 503, percent: 10},
        max_active_faults: 100}`."""
        given = mapping_of(path, data, ["delay", "abort", "max_active_faults"])
        values: dict[str, Any] = {"max_active_faults": given.get("max_active_faults")}
        if given.get("delay") is not None:
            delay = mapping_of(f"{path}.delay", given["delay"], ["fixed", "percent"])
            if "fixed" not in delay:
                raise ValidationError(f"{path}.delay.fixed", "is required (e.g. 500ms)")
            values["delay"] = delay["fixed"]
            values["delay_percent"] = delay.get("percent", 100.0)
        if given.get("abort") is not None:
            abort = mapping_of(
                f"{path}.abort", given["abort"], ["http_status", "grpc_status", "percent"]
            )
            if "http_status" not in abort and "grpc_status" not in abort:
                raise ValidationError(f"{path}.abort", "needs http_status or grpc_status")
            values["http_status"] = abort.get("http_status")
            values["grpc_status"] = abort.get("grpc_status")
            values["abort_percent"] = abort.get("percent", 100.0)
        try:
            return cls(**values)
        except ValidationError as exc:
            field = path if exc.field == "fault" else f"{path}.{exc.field}"
            raise ValidationError(field, exc.message) from None

    def to_mapping(self) -> dict[str, Any]:
        """The mapping `from_mapping` reads back as this fault."""
        out: dict[str, Any] = {}
        if self.delay is not None:
            out["delay"] = {"fixed": self.delay, "percent": self.delay_percent}
        if self.aborts:
            status = "http_status" if self.http_status is not None else "grpc_status"
            out["abort"] = {status: getattr(self, status), "percent": self.abort_percent}
        if self.max_active_faults is not None:
            out["max_active_faults"] = self.max_active_faults
        return out


_ROUTE_KEYS = ("match", "cluster", "split", "timeout", "max_stream_duration", "retries", "fault")


@dataclass(frozen=True, slots=True)
class Route:
    """One route: its match and where it sends the request (`cluster`, or `split` as
    (service, weight) pairs sorted by name), with its own timeouts, retries and fault."""

    match: RouteMatch = _EVERY_REQUEST
    cluster: str | None = None
    split: tuple[tuple[str, int], ...] = ()
    timeout: float | None = None
    max_stream_duration: float | None = None
    retries: RetryPolicy | None = None
    fault: Fault | None = None

    def __post_init__(self) -> None:
        if (self.cluster is None) == (not self.split):
            raise ValidationError("cluster", "a route takes cluster or split (exactly one)")
        if self.cluster is not None:
            check_service_name(self.cluster, "cluster")
        if len(self.split) > MAX_SPLIT:
            raise ValidationError("split", f"at most {MAX_SPLIT} services, got {len(self.split)}")
        seen: set[str] = set()
        for name, weight in self.split:
            check_service_name(name, "split")
            if name in seen:
                raise ValidationError("split", f"{name} is listed twice")
            seen.add(name)
            check_int(f"split.{name}", weight, 0, UINT32_MAX)
        object.__setattr__(self, "split", tuple(sorted(self.split)))
        total = sum(w for _, w in self.split)
        if self.split and not 0 < total <= UINT32_MAX:
            raise ValidationError(
                "split", f"weights must add up to 1..{UINT32_MAX} (clients NACK it), got {total}"
            )
        for name in ("timeout", "max_stream_duration"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_duration(name, value))

    @classmethod
    def from_mapping(cls, data: object, path: str) -> Route:
        """One route's mapping (see the module's docstring)."""
        given = mapping_of(path, data, _ROUTE_KEYS)
        split = given.get("split")
        pairs: tuple[tuple[str, int], ...] = ()
        if split is not None:
            if not isinstance(split, Mapping) or not split:
                raise ValidationError(
                    f"{path}.split", f"must map service names to weights, got {short(split)}"
                )
            pairs = tuple((str(k), v) for k, v in split.items())
        retries, fault = given.get("retries"), given.get("fault")
        try:
            return cls(
                match=RouteMatch.from_mapping(given.get("match"), f"{path}.match"),
                cluster=given.get("cluster"),
                split=pairs,
                timeout=given.get("timeout"),
                max_stream_duration=given.get("max_stream_duration"),
                retries=None
                if retries is None
                else RetryPolicy.from_mapping(retries, f"{path}.retries"),
                fault=None if fault is None else Fault.from_mapping(fault, f"{path}.fault"),
            )
        except ValidationError as exc:
            nested = exc.field.startswith(path)
            raise ValidationError(
                exc.field if nested else f"{path}.{exc.field}", exc.message
            ) from None

    @property
    def targets(self) -> tuple[str, ...]:
        """Every service this route sends to."""
        return (self.cluster,) if self.cluster is not None else tuple(n for n, _ in self.split)

    def to_mapping(self) -> dict[str, Any]:
        """The mapping `from_mapping` reads back as this route (defaults left out)."""
        out: dict[str, Any] = {}
        match = self.match.to_mapping()
        if match:
            out["match"] = match
        if self.cluster is not None:
            out["cluster"] = self.cluster
        else:
            out["split"] = dict(self.split)
        for name in ("timeout", "max_stream_duration"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.retries is not None:
            out["retries"] = self.retries.to_mapping()
        if self.fault is not None:
            out["fault"] = self.fault.to_mapping()
        return out


@dataclass(frozen=True, slots=True)
class RouteTable:
    """A service's routes, in order (the first match wins)."""

    routes: tuple[Route, ...]

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValidationError("routes", "needs at least one route (delete the routes instead)")
        if len(self.routes) > MAX_ROUTES:
            raise ValidationError(
                "routes", f"at most {MAX_ROUTES} per service, got {len(self.routes)}"
            )
        for index, route in enumerate(self.routes[:-1]):
            if route.match.matches_all:
                raise ValidationError(
                    f"routes[{index + 1}]",
                    f"can never match: routes[{index}] matches every request (put it last)",
                )

    @classmethod
    def from_list(cls, data: object, path: str = "routes") -> RouteTable:
        """The list form (each item a route mapping); errors name `routes[i].field`."""
        if not isinstance(data, list | tuple):
            raise ValidationError(path, f"must be a list of routes, got {short(data)}")
        if len(data) > MAX_ROUTES:
            raise ValidationError(path, f"at most {MAX_ROUTES} per service, got {len(data)}")
        routes = tuple(Route.from_mapping(r, f"{path}[{i}]") for i, r in enumerate(data))
        try:
            return cls(routes)
        except ValidationError as exc:
            field = exc.field.replace("routes", path, 1)
            raise ValidationError(field, exc.message) from None

    def to_list(self) -> list[dict[str, Any]]:
        """The list `from_list` reads back as this table."""
        return [route.to_mapping() for route in self.routes]

    @property
    def targets(self) -> frozenset[str]:
        """Every service some route sends to."""
        return frozenset(name for route in self.routes for name in route.targets)

    @property
    def uses_faults(self) -> bool:
        """True when some route injects faults."""
        return any(route.fault is not None for route in self.routes)

    def with_default(self, service: str) -> tuple[Route, ...]:
        """The routes as served: when the last does not match every request, one more sends
        every other request to `service` itself."""
        if self.routes[-1].match.matches_all:
            return self.routes
        return (*self.routes, Route(cluster=service))
