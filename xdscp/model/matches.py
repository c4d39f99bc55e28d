"""What a route matches: the request path (prefix, exact, RE2 regex, gRPC service and
method), its case, and header conditions (`xdscp.model.routes` holds the routes).

Pure data with validation: each constructor raises `ValidationError` naming the field, with
the limits Envoy and gRPC accept (a regex must be RE2 within Envoy's program size).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.checks import check_int

MAX_HEADERS = 16
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


def mapping_of(path: str, data: object, allowed: Sequence[str]) -> Mapping[str, Any]:
    """`data` as a mapping whose keys are all `allowed` (errors name `path`)."""
    if not isinstance(data, Mapping):
        raise ValidationError(path, f"must be a mapping, got {short(data)}")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ValidationError(path, f"unknown fields {unknown}; allowed: {', '.join(allowed)}")
    return data


def short(value: object) -> str:
    """`repr(value)`, cut to 80 characters (for error messages)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(path: str, value: object, *, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit or not _PRINTABLE.fullmatch(value):
        raise ValidationError(
            path, f"must be printable ASCII text of at most {limit} characters, got {short(value)}"
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
        given = mapping_of(path, data, ["name", *HeaderKind, "invert"])
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
                raise ValidationError(f"{path}.range", f"must be [start, end), got {short(value)}")
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
                f"must be a lower-case header name (token characters), got {short(self.name)}",
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
                    self.kind.value, f"must start with '/', got {short(self.value)}"
                )

    @classmethod
    def from_mapping(cls, data: object, path: str) -> RouteMatch:
        """The `match:` mapping (absent or empty: every request)."""
        given = mapping_of(path, data if data is not None else {}, _MATCH_KEYS)
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
            raise ValidationError(f"{path}.headers", f"must be a list, got {short(raw_headers)}")
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
    given = mapping_of(path, data, ["service", "method"])
    service, method = given.get("service"), given.get("method", "")
    if not isinstance(service, str) or not _GRPC_NAME.fullmatch(service):
        raise ValidationError(
            f"{path}.service",
            f"must be a full gRPC service name like echo.Echo, got {short(service)}",
        )
    if method and (
        not isinstance(method, str) or not _GRPC_NAME.fullmatch(method) or "." in method
    ):
        raise ValidationError(f"{path}.method", f"must be a gRPC method name, got {short(method)}")
    return service, str(method or "")
