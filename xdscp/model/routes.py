"""A service's routes: an ordered list of (match, action), the first match wins.

Pure data with validation, like the policy: every constructor checks its values and raises
`ValidationError` naming the field (`routes[2].match.headers[0].regex`) and what is allowed,
with the limits Envoy and gRPC accept, so a table a client would NACK never leaves xdscp.

The mapping form (YAML / JSON; `RouteTable.from_list` / `to_list`)::

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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.checks import UINT32_MAX, check_float, check_int, check_service_name
from xdscp.model.resilience import RetryPolicy, parse_duration

MAX_ROUTES = 256
"""Routes per service: far above what a service needs, far below a RouteConfiguration that
would slow every client's matching (each request walks the list)."""
MAX_HEADERS = 16
MAX_SPLIT = 64
MAX_REGEX_LENGTH = 1024
MAX_REGEX_PROGRAM = 100  # Envoy's default `re2.max_program_size.error_level`
MAX_PATH_LENGTH = 1024
MAX_HEADER_VALUE = 1024
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,256}")  # lower-case RFC 9110 token
_GRPC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,255}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# RE2 (Envoy, grpc-go, C-core) has no backreferences and no lookaround.
_NOT_RE2 = re.compile(r"\\[1-9]|\(\?[=!<]|\(\?P=|\\[gk]<")


class PathKind(StrEnum):
    """How a route matches the request path."""

    PREFIX = "prefix"
    PATH = "path"
    REGEX = "regex"


class HeaderKind(StrEnum):
    """How a route matches one header."""

    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"
    PRESENT = "present"
    RANGE = "range"


def _mapping(path: str, data: object, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(path, f"must be a mapping, got {_short(data)}")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ValidationError(path, f"unknown fields {unknown}; allowed: {', '.join(allowed)}")
    return data


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(path: str, value: object, *, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit or not _PRINTABLE.fullmatch(value):
        raise ValidationError(
            path, f"must be printable ASCII text of at most {limit} characters, got {_short(value)}"
        )
    if not value and not empty:
        raise ValidationError(path, "must not be empty")
    return value


def check_regex(path: str, value: object) -> str:
    """A regex every client compiles the same way: RE2 syntax (no backreferences, no
    lookaround), Python-compilable, at most `MAX_REGEX_LENGTH` characters and, where the RE2
    library is installed, a program of at most `MAX_REGEX_PROGRAM` (Envoy's limit)."""
    text = _text(path, value, limit=MAX_REGEX_LENGTH)
    if _NOT_RE2.search(text):
        raise ValidationError(path, "backreferences and lookaround are not RE2 (clients refuse)")
    try:
        re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValidationError(path, f"is not a valid regex: {exc}") from None
    size = _re2_program_size(text)
    if isinstance(size, str):
        raise ValidationError(path, f"is not a valid RE2 regex: {size}")
    if size is not None and size > MAX_REGEX_PROGRAM:
        raise ValidationError(
            path, f"compiles to an RE2 program of {size}, over Envoy's limit of {MAX_REGEX_PROGRAM}"
        )
    return text


def _re2_program_size(text: str) -> int | str | None:
    """RE2's program size of `text` (an error message when RE2 refuses it; None without
    the `google-re2` library)."""
    try:
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the library is a dependency
        return None
    try:
        compiled = re2.compile(text)
    except re2.error as exc:
        return str(exc)
    return int(compiled.programsize)


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """One header condition: `kind` against `value` (a range is `[start, end)`), inverted
    with `invert`."""

    name: str
    kind: HeaderKind
    value: str = ""
    range_start: int = 0
    range_end: int = 0
    invert: bool = False

    @classmethod
    def from_mapping(cls, data: object, path: str) -> HeaderMatch:
        """`{name: x-user, exact: alice}`, `{name: x, present: true}`, `{name: x, range:
        [1, 10]}`..., with an optional `invert: true`."""
        given = _mapping(path, data, ["name", *HeaderKind, "invert"])
        kinds = [k for k in HeaderKind if k in given]
        if len(kinds) != 1:
            raise ValidationError(
                path, f"needs exactly one of {', '.join(HeaderKind)}, got {kinds or 'none'}"
            )
        kind, value = kinds[0], given[kinds[0]]
        invert = given.get("invert", False)
        if not isinstance(invert, bool):
            raise ValidationError(f"{path}.invert", f"must be true or false, got {invert!r}")
        name = given.get("name")
        if kind is HeaderKind.PRESENT:
            if value is not True:
                raise ValidationError(
                    f"{path}.present", "must be true (invert: true matches an absent header)"
                )
            return cls._checked(path, name=name, kind=kind, invert=invert)
        if kind is HeaderKind.RANGE:
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ValidationError(f"{path}.range", f"must be [start, end), got {_short(value)}")
            return cls._checked(
                path, name=name, kind=kind, range_start=value[0], range_end=value[1], invert=invert
            )
        return cls._checked(path, name=name, kind=kind, value=value, invert=invert)

    @classmethod
    def _checked(cls, path: str, **values: Any) -> HeaderMatch:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ValidationError(f"{path}.{exc.field}", exc.message) from None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _HEADER_NAME.fullmatch(self.name):
            raise ValidationError(
                "name",
                f"must be a lower-case header name (token characters), got {_short(self.name)}",
            )
        if self.name.endswith("-bin") or self.name.startswith("grpc-"):
            raise ValidationError(
                "name", f"gRPC clients never match {self.name!r} (binary or reserved)"
            )
        kind = self.kind
        if not isinstance(kind, HeaderKind):
            raise ValidationError("kind", f"must be one of {', '.join(HeaderKind)}, got {kind!r}")
        if kind is HeaderKind.REGEX:
            check_regex("regex", self.value)
        elif kind in {HeaderKind.EXACT, HeaderKind.PREFIX, HeaderKind.SUFFIX}:
            # Envoy requires a non-empty prefix / suffix (min_len 1); exact may be empty.
            _text(kind.value, self.value, limit=MAX_HEADER_VALUE, empty=kind is HeaderKind.EXACT)
        elif self.value:
            raise ValidationError(kind.value, "takes no value")
        if kind is HeaderKind.RANGE:
            low, high = -(2**63), 2**63 - 1
            check_int("range[0]", self.range_start, low, high)
            check_int("range[1]", self.range_end, low, high)
            if self.range_start >= self.range_end:
                raise ValidationError(
                    "range", f"start must be below end ([start, end)), got [{self.range_start}, "
                    f"{self.range_end}]"
                )  # fmt: skip
        elif self.range_start or self.range_end:
            raise ValidationError("range", f"is for range matches only, not {kind}")

    def to_mapping(self) -> dict[str, Any]:
        """The mapping `from_mapping` reads back as this match."""
        out: dict[str, Any] = {"name": self.name}
        if self.kind is HeaderKind.PRESENT:
            out["present"] = True
        elif self.kind is HeaderKind.RANGE:
            out["range"] = [self.range_start, self.range_end]
        else:
            out[self.kind.value] = self.value
        if self.invert:
            out["invert"] = True
        return out


_MATCH_KEYS = ("prefix", "path", "regex", "grpc", "case_sensitive", "headers")


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What a request must be to take the route: its path (`kind`, `value`), compared
    case-sensitively or not, and every header condition. `grpc` keeps the gRPC sugar it was
    written with (`(service, method)`, method "" for any), from which the path derives."""

    kind: PathKind = PathKind.PREFIX
    value: str = "/"
    case_sensitive: bool = True
    headers: tuple[HeaderMatch, ...] = ()
    grpc: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.case_sensitive, bool):
            raise ValidationError(
                "case_sensitive", f"must be true or false, got {self.case_sensitive!r}"
            )
        if len(self.headers) > MAX_HEADERS:
            raise ValidationError(
                "headers", f"at most {MAX_HEADERS} per route, got {len(self.headers)}"
            )
        if self.kind is PathKind.REGEX:
            check_regex("regex", self.value)
        else:
            _text(self.kind.value, self.value, limit=MAX_PATH_LENGTH)
            if not self.value.startswith("/"):
                raise ValidationError(
                    self.kind.value, f"must start with '/', got {_short(self.value)}"
                )

    @classmethod
    def from_mapping(cls, data: object, path: str) -> RouteMatch:
        """The `match:` mapping (absent or empty: every request)."""
        given = _mapping(path, data if data is not None else {}, _MATCH_KEYS)
        forms = [k for k in ("prefix", "path", "regex", "grpc") if k in given]
        if len(forms) > 1:
            raise ValidationError(path, f"takes one of prefix, path, regex, grpc, got {forms}")
        kind, value, grpc = PathKind.PREFIX, "/", None
        if forms == ["grpc"]:
            grpc = _grpc_sugar(f"{path}.grpc", given["grpc"])
            kind, value = (PathKind.PATH, f"/{grpc[0]}/{grpc[1]}") if grpc[1] else (
                PathKind.PREFIX, f"/{grpc[0]}/"
            )  # fmt: skip
        elif forms:
            kind, value = PathKind(forms[0]), given[forms[0]]
        raw_headers = given.get("headers") or []
        if not isinstance(raw_headers, list | tuple):
            raise ValidationError(f"{path}.headers", f"must be a list, got {_short(raw_headers)}")
        if len(raw_headers) > MAX_HEADERS:
            raise ValidationError(
                f"{path}.headers", f"at most {MAX_HEADERS} per route, got {len(raw_headers)}"
            )
        headers = tuple(
            HeaderMatch.from_mapping(h, f"{path}.headers[{i}]") for i, h in enumerate(raw_headers)
        )
        try:
            return cls(kind, value, given.get("case_sensitive", True), headers, grpc)
        except ValidationError as exc:
            raise ValidationError(f"{path}.{exc.field}", exc.message) from None

    @property
    def matches_all(self) -> bool:
        """True when every request matches (prefix `/`, no header condition)."""
        return self.kind is PathKind.PREFIX and self.value == "/" and not self.headers

    def to_mapping(self) -> dict[str, Any]:
        """The mapping `from_mapping` reads back as this match (defaults left out)."""
        out: dict[str, Any] = {}
        if self.grpc is not None:
            sugar = {"service": self.grpc[0]}
            if self.grpc[1]:
                sugar["method"] = self.grpc[1]
            out["grpc"] = sugar
        elif not (self.kind is PathKind.PREFIX and self.value == "/"):
            out[self.kind.value] = self.value
        if not self.case_sensitive:
            out["case_sensitive"] = False
        if self.headers:
            out["headers"] = [h.to_mapping() for h in self.headers]
        return out


def _grpc_sugar(path: str, data: object) -> tuple[str, str]:
    given = _mapping(path, data, ["service", "method"])
    service, method = given.get("service"), given.get("method", "")
    if not isinstance(service, str) or not _GRPC_NAME.fullmatch(service):
        raise ValidationError(
            f"{path}.service",
            f"must be a full gRPC service name like echo.Echo, got {_short(service)}",
        )
    if method and (
        not isinstance(method, str) or not _GRPC_NAME.fullmatch(method) or "." in method
    ):
        raise ValidationError(f"{path}.method", f"must be a gRPC method name, got {_short(method)}")
    return service, str(method or "")


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
        given = _mapping(path, data, ["delay", "abort", "max_active_faults"])
        values: dict[str, Any] = {"max_active_faults": given.get("max_active_faults")}
        if given.get("delay") is not None:
            delay = _mapping(f"{path}.delay", given["delay"], ["fixed", "percent"])
            if "fixed" not in delay:
                raise ValidationError(f"{path}.delay.fixed", "is required (e.g. 500ms)")
            values["delay"] = delay["fixed"]
            values["delay_percent"] = delay.get("percent", 100.0)
        if given.get("abort") is not None:
            abort = _mapping(
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

    match: RouteMatch = RouteMatch()
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
        given = _mapping(path, data, _ROUTE_KEYS)
        split = given.get("split")
        pairs: tuple[tuple[str, int], ...] = ()
        if split is not None:
            if not isinstance(split, Mapping) or not split:
                raise ValidationError(
                    f"{path}.split", f"must map service names to weights, got {_short(split)}"
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
            raise ValidationError(path, f"must be a list of routes, got {_short(data)}")
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
