"""A request's route, and the split it gets, for a service with routes: what `xdscp simulate
--path --header` prints and `/api/predict?path=` answers.

The routes are the served ones (`xdscp.translate.routes.served_routes`: the default route
added, targets that are not among `services` left out); the route the request takes and its
split over clusters come from `route_split`; each cluster's endpoint split is `simulate` run
over that cluster's own resources and policy. gRPC clients hash by the route, so every
cluster is simulated with the hash policies of the service that owns the routes (Envoy
reads each cluster's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xdscp.balancer.routing import RouteSplit, route_split
from xdscp.balancer.simulation import Conditions, SimulationResult, simulate
from xdscp.model import ClientKind, Route, Service
from xdscp.translate import client_resources, route_hash_policies
from xdscp.translate.routes import route_notes, served_routes


@dataclass(frozen=True, slots=True)
class RoutePrediction:
    """The served routes, what was left out of them (`notes`), the request's `split` and
    each of its clusters' simulated endpoint split (`results`, shares within the cluster)."""

    served: tuple[Route, ...]
    notes: tuple[str, ...]
    split: RouteSplit
    results: Mapping[str, SimulationResult]


def simulate_routes(
    owner: Service,
    services: Mapping[str, Service],
    *,
    path: str,
    headers: Mapping[str, str],
    requests: int,
    client: ClientKind = ClientKind.ENVOY,
    seed: int | None = None,
    conditions: Conditions | None = None,
) -> RoutePrediction:
    """Where a request to `owner` with `path` and `headers` goes, `requests` synthetic
    requests per cluster. `services` are the services served beside it (route targets);
    `conditions` (ejected hosts, ages) apply to `owner`'s own cluster."""
    present = {*services, owner.name}
    served = tuple(served_routes(owner, present))
    results: dict[str, SimulationResult] = {}
    policies = route_hash_policies(owner, client)

    def shares(name: str) -> dict[str, float]:
        target = owner if name == owner.name else services[name]
        results[name] = simulate(
            target, client_resources(client), requests=requests, client=client, seed=seed,
            route_policies=policies, conditions=conditions if target is owner else None,
        )  # fmt: skip
        return {row.key: row.share for row in results[name].endpoints}

    split = route_split(served, path, headers, shares)
    return RoutePrediction(served, tuple(route_notes(owner, present)), split, results)
