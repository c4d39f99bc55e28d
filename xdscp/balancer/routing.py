"""Which route a request takes, and how it spreads over clusters and their endpoints.

The route a client picks for a request from a service's served routes
(`xdscp.translate.served_routes`): the first whose match the request meets, as Envoy and
proxyless gRPC (gRFC A28) match it:

- `prefix` against the whole `:path`; `path` and `regex` against the path without its query
  string and fragment; `regex` is RE2 and must match the whole path; `case_sensitive: false`
  compares prefix and path in any (ASCII) case and is ignored for a regex;
- each header condition against the request's value (names in any case): `exact`,
  `prefix`, `suffix`, `regex` (RE2, the whole value), `range` (the value is a base-10 int64
  in [start, end)), `present`; `invert` negates the outcome. A header the request lacks
  fails every condition except `present` with `invert` (both clients: Envoy's
  `matchHeaders`, grpc-go's and grpc-java's header matchers).

Then the route's clusters: `cluster` takes every request, `split` each cluster by its weight
over the total (one random draw per request, both clients). Then each cluster's endpoints by
that cluster's own policy: `route_split` multiplies each cluster's share by the endpoint
shares it is given (`xdscp.balancer.simulate` per cluster, in `xdscp simulate` and the
admin server). Pure functions: no I/O, no randomness.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]

from xdscp.model import HeaderKind, HeaderMatch, PathKind, Route, RouteMatch

_INT64 = re.compile(r"[+-]?[0-9]+")
_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """ASCII lower case (what Envoy's and gRPC's case-insensitive compare use)."""
    return text.translate(_UPPER)


def _full_match(pattern: str, text: str) -> bool:
    return re2.fullmatch(pattern, text) is not None


def path_only(path: str) -> str:
    """The path without its query string and fragment."""
    return path.split("?", 1)[0].split("#", 1)[0]


def path_matches(match: RouteMatch, path: str) -> bool:
    """True when `path` (the request's `:path`) meets the match's path condition."""
    if match.kind is PathKind.REGEX:
        return _full_match(match.value, path_only(path))
    value, subject = match.value, path if match.kind is PathKind.PREFIX else path_only(path)
    if not match.case_sensitive:
        value, subject = _lower(value), _lower(subject)
    if match.kind is PathKind.PREFIX:
        return subject.startswith(value)
    return subject == value


def _int64(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def _value_matches(header: HeaderMatch, value: str) -> bool:
    match header.kind:
        case HeaderKind.EXACT:
            return value == header.value
        case HeaderKind.PREFIX:
            return value.startswith(header.value)
        case HeaderKind.SUFFIX:
            return value.endswith(header.value)
        case HeaderKind.REGEX:
            return _full_match(header.value, value)
        case HeaderKind.RANGE:
            number = _int64(value)
            return number is not None and header.range_start <= number < header.range_end
        case _:  # present
            return True


def header_matches(header: HeaderMatch, headers: Mapping[str, str]) -> bool:
    """True when the request's `headers` (lower-case names) meet one condition."""
    value = headers.get(header.name)
    if value is None:
        return header.kind is HeaderKind.PRESENT and header.invert
    return _value_matches(header, value) != header.invert


def route_matches(match: RouteMatch, path: str, headers: Mapping[str, str]) -> bool:
    """True when a request meets the match: its path and every header condition."""
    return path_matches(match, path) and all(header_matches(h, headers) for h in match.headers)


def lower_names(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-case names (HTTP/2 and gRPC metadata names are)."""
    return {_lower(name): value for name, value in headers.items()}


def first_match(routes: Sequence[Route], path: str, headers: Mapping[str, str]) -> int | None:
    """The index of the first route the request meets (None: none; the client answers
    404 / UNAVAILABLE)."""
    named = lower_names(headers)
    return next(
        (i for i, route in enumerate(routes) if route_matches(route.match, path, named)), None
    )


def cluster_shares(route: Route) -> dict[str, float]:
    """Each target's share of the route's requests: 1 for `cluster`, weight over the total
    for a `split`."""
    if route.cluster is not None:
        return {route.cluster: 1.0}
    total = sum(weight for _, weight in route.split)
    return {name: weight / total for name, weight in route.split}


@dataclass(frozen=True, slots=True)
class RouteSplit:
    """Where a request goes: the index of the route it takes (None: no route matches) and
    that route; each cluster's share; and per cluster each endpoint's share of all the
    route's requests (the cluster's share times the endpoint's share within it)."""

    index: int | None
    route: Route | None
    clusters: Mapping[str, float]
    endpoints: Mapping[str, Mapping[str, float]]


def route_split(
    routes: Sequence[Route],
    path: str,
    headers: Mapping[str, str],
    endpoint_shares: Callable[[str], Mapping[str, float]],
) -> RouteSplit:
    """The route a request with `path` and `headers` takes among `routes` (as served),
    the split over its clusters, and each endpoint's share: `endpoint_shares(cluster)` is
    the cluster's own split over its endpoints (shares of its requests)."""
    index = first_match(routes, path, headers)
    if index is None:
        return RouteSplit(None, None, {}, {})
    route = routes[index]
    clusters = cluster_shares(route)
    endpoints = {
        name: {key: share * part for key, part in endpoint_shares(name).items()}
        for name, share in clusters.items()
    }
    return RouteSplit(index, route, clusters, endpoints)
