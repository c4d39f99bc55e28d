"""A service's routes (`xdscp.model.routes`) → the Route messages of its virtual host.

Per route field, Envoy / proxyless gRPC (gRFC):

- prefix, path, regex: `match.prefix` / `path` / `safe_regex`, both (A28); case_sensitive
  false: `match.case_sensitive`, both;
- headers: `HeaderMatcher` (`string_match`, `present_match`, `range_match`, `invert_match`),
  both (A28);
- cluster / split: `cluster` / `weighted_clusters`, both;
- timeout: Envoy `timeout`; gRPC `max_stream_duration` (A31) unless the route sets that;
- max_stream_duration: `max_stream_duration`, both;
- retries: `retry_policy` replacing the policy's; gRPC on its status names only (A44);
- fault: the per-route `HTTPFault` config of the fault filter, both (A33).

The HTTP fault filter (`envoy.filters.http.fault`, empty: a no-op) sits before the router in
Envoy's listener always, and in a gRPC Listener when its service's routes inject faults
(marked optional: a client without it still accepts the listener).

A target that is not a served service is left out of its route (`present` says which are):
a split keeps its other targets, and a route left with none is dropped, so a client never
gets a route to a cluster it cannot fetch. `route_notes` says what was left out.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2, range_pb2

from xdscp.model import HeaderKind, HeaderMatch, PathKind, Route, RouteMatch, Service
from xdscp.translate.resilience import duration, envoy_retry_policy, grpc_retry_policy

FAULT_FILTER = "envoy.filters.http.fault"
_R = route_components_pb2


def served_routes(service: Service, present: Collection[str]) -> list[Route]:
    """The routes a client gets: the table with its default route, each route's targets
    cut to the `present` services, routes left with none dropped."""
    return [served for _, served in route_outcomes(service, present) if served is not None]


def route_outcomes(service: Service, present: Collection[str]) -> list[tuple[Route, Route | None]]:
    """Each route of the table with its default route, beside what is served of it: the
    route with its targets cut to the `present` services (and zero weights left out of a
    split), or None when none is left (the route is dropped). When no served route matches
    every request (the table's catch-all was dropped), the default route is added last."""
    if service.routes is None:
        return [(Route(cluster=service.name), Route(cluster=service.name))]
    out: list[tuple[Route, Route | None]] = []
    for route in service.routes.with_default(service.name):
        kept = [t for t in route.targets if t in present or t == service.name]
        served: Route | None = None
        if route.cluster is not None and kept:
            served = route
        elif route.split:
            weights = [(n, w) for n, w in route.split if n in kept and w > 0]
            if sum(w for _, w in weights) > 0:
                served = _with_split(route, weights)
        out.append((route, served))
    if not any(served is not None and served.match.matches_all for _, served in out):
        # the table's catch-all was dropped (its targets are not served): every other
        # request still reaches the service itself, not a missing route
        default = Route(cluster=service.name)
        out.append((default, default))
    return out


def _with_split(route: Route, weights: list[tuple[str, int]]) -> Route:
    if len(weights) == len(route.split):
        return route
    return Route(
        route.match, None, tuple(weights), route.timeout, route.max_stream_duration,
        route.retries, route.fault,
    )  # fmt: skip


def route_notes(service: Service, present: Collection[str]) -> list[str]:
    """What was left out of the service's routes, and why (targets not served)."""
    if service.routes is None:
        return []
    missing = sorted(t for t in service.routes.targets if t not in present and t != service.name)
    if not missing:
        return []
    return [
        f"routes: {', '.join(missing)} not served; left out of the routes naming them (a route"
        " left with no target is dropped) until they are"
    ]


def _string(kind: HeaderKind, value: str) -> Any:
    matcher = string_pb2.StringMatcher()
    match kind:
        case HeaderKind.EXACT:
            matcher.exact = value
        case HeaderKind.PREFIX:
            matcher.prefix = value
        case HeaderKind.SUFFIX:
            matcher.suffix = value
        case _:
            matcher.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=value))
    return matcher


def header_matcher(header: HeaderMatch) -> Any:
    """One HeaderMatcher: `string_match` for the string kinds, present, range."""
    matcher = _R.HeaderMatcher(name=header.name, invert_match=header.invert)
    if header.kind is HeaderKind.PRESENT:
        matcher.present_match = True
    elif header.kind is HeaderKind.RANGE:
        matcher.range_match.CopyFrom(
            range_pb2.Int64Range(start=header.range_start, end=header.range_end)
        )
    else:
        matcher.string_match.CopyFrom(_string(header.kind, header.value))
    return matcher


def route_match(match: RouteMatch, *, grpc: bool) -> Any:
    """The RouteMatch (gRPC's catch-all prefix is "", Envoy's "/": both match every path)."""
    out = _R.RouteMatch()
    if match.kind is PathKind.PATH:
        out.path = match.value
    elif match.kind is PathKind.REGEX:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.value))
    else:
        out.prefix = "" if grpc and match.value == "/" else match.value
    if not match.case_sensitive:
        out.case_sensitive.value = False
    out.headers.extend(header_matcher(h) for h in match.headers)
    return out


def http_fault(route: Route) -> Any:
    """The route's HTTPFault (percentages per million, so 0.0001 % is exact)."""
    fault = route.fault
    config = fault_pb2.HTTPFault()
    if fault is None:
        return config
    if fault.delay is not None:
        config.delay.fixed_delay.CopyFrom(duration(fault.delay))
        config.delay.percentage.CopyFrom(_per_million(fault.delay_percent))
    if fault.http_status is not None:
        config.abort.http_status = fault.http_status
    if fault.grpc_status is not None:
        config.abort.grpc_status = fault.grpc_status
    if fault.aborts:
        config.abort.percentage.CopyFrom(_per_million(fault.abort_percent))
    if fault.max_active_faults is not None:
        config.max_active_faults.value = fault.max_active_faults
    return config


def _per_million(percent: float) -> Any:
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _target(action: Any, route: Route) -> None:
    if route.cluster is not None:
        action.cluster = route.cluster
        return
    for name, weight in route.split:
        entry = action.weighted_clusters.clusters.add(name=name)
        entry.weight.value = weight


def envoy_route(route: Route, service: Service) -> Any:
    """One Envoy Route: match, target, timeouts, retries (the route's, else the policy's)."""
    out = _R.Route(match=route_match(route.match, grpc=False))
    action = out.route
    _target(action, route)
    retries = route.retries if route.retries is not None else service.policy.retries
    if retries is not None and retries.num_retries > 0:
        action.retry_policy.CopyFrom(envoy_retry_policy(retries))
    timeout = route.timeout if route.timeout is not None else service.policy.timeout
    if timeout is not None:
        action.timeout.CopyFrom(duration(timeout))
    if route.max_stream_duration is not None:
        action.max_stream_duration.max_stream_duration.CopyFrom(duration(route.max_stream_duration))
    if route.fault is not None:
        out.typed_per_filter_config[FAULT_FILTER].Pack(http_fault(route), deterministic=True)
    return out


def grpc_route(route: Route, service: Service, hash_policies: list[Any]) -> Any:
    """One gRPC Route: what `envoy_route` sets that gRPC reads, the deadline cap as
    `max_stream_duration`, and the service's hash policies."""
    out = _R.Route(match=route_match(route.match, grpc=True))
    action = out.route
    _target(action, route)
    action.hash_policy.extend(hash_policies)
    retries = route.retries if route.retries is not None else service.policy.retries
    retry = grpc_retry_policy(retries) if retries is not None else None
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    cap = route.max_stream_duration
    if cap is None:
        cap = route.timeout if route.timeout is not None else service.policy.timeout
    if cap:  # 0 (no timeout) is the same as unset for gRPC
        action.max_stream_duration.max_stream_duration.CopyFrom(duration(cap))
    if route.fault is not None:
        out.typed_per_filter_config[FAULT_FILTER].Pack(http_fault(route), deterministic=True)
    return out


def fault_filter(*, optional: bool) -> Any:
    """The HCM's fault filter entry (an empty config: routes bring their own)."""
    http_filter = hcm_pb2.HttpFilter(name=FAULT_FILTER, is_optional=optional)
    http_filter.typed_config.Pack(fault_pb2.HTTPFault(), deterministic=True)
    return http_filter
