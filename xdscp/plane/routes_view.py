"""A service's routes as the admin API shows them: in `/api/services` the served form with
what was left out, in `/api/predict?path=` the route a request takes and its split.

`routes_view`: one entry per route of the table plus the default route xdscp appends
(`default: true`), each with its match (the mapping form, `{}`: every request), the
targets served with their weights and shares, the targets `dropped` (not served) and
`served: false` when none is left (the route is not sent), and its timeout,
max_stream_duration, retries and fault (null: not set).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from xdscp.balancer import cluster_shares
from xdscp.balancer.route_simulation import RoutePrediction
from xdscp.model import Route, Service
from xdscp.translate.routes import route_outcomes


def _targets(route: Route) -> list[dict[str, Any]]:
    weights = dict(route.split)
    return [
        {"cluster": name, "weight": weights.get(name), "share": share}
        for name, share in cluster_shares(route).items()
    ]


def route_entry(route: Route, served: Route | None, *, default: bool) -> dict[str, Any]:
    """One route: its match, served targets (weight null for `cluster`), dropped targets,
    whether it is served, and its own settings."""
    kept = set() if served is None else set(served.targets)
    return {
        "match": route.match.to_mapping(),
        "targets": [] if served is None else _targets(served),
        "dropped": [name for name in route.targets if name not in kept],
        "served": served is not None,
        "default": default,
        "timeout": route.timeout,
        "max_stream_duration": route.max_stream_duration,
        "retries": None if route.retries is None else route.retries.to_mapping(),
        "fault": None if route.fault is None else route.fault.to_mapping(),
    }


def routes_view(service: Service, present: Collection[str]) -> list[dict[str, Any]] | None:
    """The service's routes as served beside the `present` services (None: it has none,
    every request goes to its own endpoints)."""
    if service.routes is None:
        return None
    written = len(service.routes.routes)
    return [
        route_entry(route, served, default=index >= written)
        for index, (route, served) in enumerate(route_outcomes(service, present))
    ]


def prediction_json(
    prediction: RoutePrediction, path: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    """The route a request takes (`index` among the served routes; null: none matches) and
    per cluster its share and its endpoints' shares (`share`: within the cluster,
    `route_share`: of all the route's requests)."""
    split = prediction.split
    out: dict[str, Any] = {
        "path": path,
        "headers": dict(headers),
        "index": split.index,
        "served": len(prediction.served),
        "notes": list(prediction.notes),
        "route": None,
        "clusters": [],
    }
    if split.route is None:
        return out
    out["route"] = route_entry(split.route, split.route, default=False)
    del out["route"]["default"]  # the served list no longer says which was appended
    weights = dict(split.route.split)
    for name, share in split.clusters.items():
        result = prediction.results[name]
        out["clusters"].append(
            {
                "cluster": name,
                "weight": weights.get(name),
                "share": share,
                "unserved": result.unserved,
                "endpoints": [
                    {
                        "endpoint": row.key,
                        "share": row.share,
                        "route_share": split.endpoints[name][row.key],
                    }
                    for row in result.endpoints
                ],
            }
        )
    return out
