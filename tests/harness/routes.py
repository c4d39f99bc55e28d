"""Route tables for tests: hypothesis strategies of valid tables (in the mapping form a user
writes) and of hostile documents, and the canary world the translation and real-client tests
share.

`route_lists(targets)` draws a list `RouteTable.from_list` accepts: every route but the last
has a condition (a catch-all before the end is refused), targets from `targets`.
`hostile_documents()` draws anything JSON or YAML can hold, shaped like a route list often
enough to reach the deep checks.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from xdscp.model import Endpoint, Locality, RouteTable, Service

_HEADER_NAMES = st.sampled_from(["x-canary", "x-user", "x-version", "user-agent", "x-n"])
_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
_REGEXES = st.sampled_from(["^/api/v[0-9]+/.*", "/items/[a-z]+", ".*canary.*", "[0-9]{1,3}"])
_DURATIONS = st.sampled_from([0.25, 1, 2.5, "250ms", "3s", "1m"])


def _header(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["exact", "prefix", "suffix", "regex", "present", "range"]))
    header: dict[str, Any] = {"name": draw(_HEADER_NAMES)}
    if kind == "present":
        header["present"] = True
    elif kind == "range":
        start = draw(st.integers(-1000, 1000))
        header["range"] = [start, start + draw(st.integers(1, 1000))]
    elif kind == "regex":
        header["regex"] = draw(_REGEXES)
    else:
        header[kind] = draw(_TEXT)
    if draw(st.booleans()):
        header["invert"] = True
    return header


def _match(draw: st.DrawFn, *, conditional: bool) -> dict[str, Any]:
    form = draw(st.sampled_from(["prefix", "path", "regex", "grpc", "none"]))
    match: dict[str, Any] = {}
    if form in {"prefix", "path"}:
        match[form] = "/" + draw(_TEXT)
    elif form == "regex":
        match["regex"] = draw(_REGEXES)
    elif form == "grpc":
        sugar = {"service": draw(st.sampled_from(["echo.Echo", "grpc.testing.TestService"]))}
        if draw(st.booleans()):
            sugar["method"] = draw(st.sampled_from(["UnaryCall", "EmptyCall", "Get"]))
        match["grpc"] = sugar
    if draw(st.booleans()):
        match["case_sensitive"] = False
    headers = [_header(draw) for _ in range(draw(st.integers(0, 3)))]
    if conditional and form == "none" and not headers:
        headers = [_header(draw)]
    if headers:
        match["headers"] = headers
    return match


def _fault(draw: st.DrawFn) -> dict[str, Any]:
    fault: dict[str, Any] = {}
    if draw(st.booleans()):
        fault["delay"] = {"fixed": draw(_DURATIONS), "percent": draw(st.integers(0, 100))}
    if draw(st.booleans()) or not fault:
        status = draw(st.sampled_from(["http_status", "grpc_status"]))
        value = draw(st.integers(200, 599) if status == "http_status" else st.integers(1, 16))
        fault["abort"] = {status: value, "percent": draw(st.floats(0, 100, allow_nan=False))}
    if draw(st.booleans()):
        fault["max_active_faults"] = draw(st.integers(0, 1000))
    return fault


@st.composite
def route_mappings(draw: st.DrawFn, targets: tuple[str, ...], conditional: bool) -> dict[str, Any]:
    """One route's mapping; `conditional`: it does not match every request."""
    route: dict[str, Any] = {}
    match = _match(draw, conditional=conditional)
    if match:
        route["match"] = match
    if draw(st.booleans()):
        route["cluster"] = draw(st.sampled_from(targets))
    else:
        names = draw(st.lists(st.sampled_from(targets), min_size=1, unique=True))
        route["split"] = {n: draw(st.integers(1, 1000)) for n in names}
    if draw(st.booleans()):
        route["timeout"] = draw(_DURATIONS)
    if draw(st.booleans()):
        route["max_stream_duration"] = draw(_DURATIONS)
    if draw(st.booleans()):
        route["retries"] = {
            "retry_on": draw(st.lists(st.sampled_from(["5xx", "unavailable", "reset"]),
                                      min_size=1, unique=True)),
            "num_retries": draw(st.integers(0, 4)),
        }  # fmt: skip
    if draw(st.booleans()):
        route["fault"] = _fault(draw)
    return route


@st.composite
def route_lists(draw: st.DrawFn, targets: tuple[str, ...] = ("web", "web-v2")) -> list[Any]:
    """A list of route mappings `RouteTable.from_list` accepts."""
    count = draw(st.integers(1, 5))
    routes = [draw(route_mappings(targets, conditional=True)) for _ in range(count - 1)]
    routes.append(draw(route_mappings(targets, conditional=False)))
    return routes


_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
)  # fmt: skip
_ANY = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from([
    "match", "cluster", "split", "timeout", "max_stream_duration", "retries", "fault", "prefix",
    "path", "regex", "grpc", "headers", "name", "exact", "present", "range", "invert", "delay",
    "abort", "http_status", "grpc_status", "percent", "fixed", "service", "method",
])  # fmt: skip
_SHAPED = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=30,
)


def hostile_documents() -> st.SearchStrategy[Any]:
    """Anything: random JSON-like values, values shaped like routes, valid lists mutated."""
    mutated = route_lists().flatmap(
        lambda routes: st.tuples(st.just(routes), st.integers(0, len(routes) - 1), _SHAPED).map(
            lambda t: [*t[0][: t[1]], t[2], *t[0][t[1] + 1 :]]
        )
    )
    return _ANY | st.lists(_SHAPED, max_size=4) | mutated


CANARY_ROUTES = [
    {"match": {"headers": [{"name": "x-canary", "exact": "always"}]}, "cluster": "web-v2"},
    {"match": {"prefix": "/v2/"}, "cluster": "web-v2"},
    {"match": {"prefix": "/fault/"}, "cluster": "web",
     "fault": {"abort": {"http_status": 503, "percent": 100}}},
    {"split": {"web": 90, "web-v2": 10}},
]  # fmt: skip
"""The canary: a header and a path to web-v2, a path that always aborts, 90/10 for the rest."""

GRPC_CANARY_ROUTES = [
    {"match": {"headers": [{"name": "x-canary", "exact": "always"}]}, "cluster": "web-v2"},
    {"match": {"grpc": {"service": "grpc.testing.TestService", "method": "EmptyCall"}},
     "cluster": "web", "fault": {"abort": {"grpc_status": 14, "percent": 100}}},
    {"split": {"web": 90, "web-v2": 10}},
]  # fmt: skip
"""The canary for gRPC: a header to web-v2, one method that always fails UNAVAILABLE."""


def canary_world(routes: list[Any] | None = None) -> dict[str, Service]:
    """`web` (with the canary routes) and `web-v2`, two endpoints each."""
    table = RouteTable.from_list(routes if routes is not None else CANARY_ROUTES)
    zone = Locality("r", "z")
    web = tuple(Endpoint(f"10.0.0.{i}", 8080, locality=zone) for i in (1, 2))
    v2 = tuple(Endpoint(f"10.0.1.{i}", 8080, locality=zone) for i in (1, 2))
    return {"web": Service("web", web, routes=table), "web-v2": Service("web-v2", v2)}
