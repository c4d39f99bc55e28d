"""The operators' view of the plane: what the admin server shows (`PlaneView`).

`PlaneView` is the admin server's `AdminView`, built once from the plane's parts (the status
board, the cache, the pipeline, the health stage, the source monitor). The admin server's
`/api/services` and `/api/predict` (and the dashboard) read services and predictions. Values
hold model objects as they are (a policy, an endpoint's locality); the admin server's one
encoder (`xdscp.admin.encode`) writes them in the model's own form. A
prediction is the reference balancer run over the very Cluster and ClusterLoadAssignment the
client is sent (`xdscp.translate.client_resources`), exactly as `xdscp simulate` runs it, with
a fixed seed so the same service always shows the same split.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from xdscp.admin import PredictQuery
from xdscp.admin.encode import plain
from xdscp.admin.query import DEFAULT_REQUESTS
from xdscp.balancer import Balancer, SimulationResult, build_balancer, route_request, simulate
from xdscp.balancer.route_simulation import simulate_routes
from xdscp.cache import SnapshotCache
from xdscp.health import HealthStage
from xdscp.model import ClientKind, Endpoint, Service
from xdscp.plane.load import PlaneLoad
from xdscp.plane.pipeline import Pipeline
from xdscp.plane.routes_view import prediction_json, routes_view
from xdscp.plane.shared_load import SharedLoad
from xdscp.plane.shared_weights import SharedWeights
from xdscp.plane.source_health import SourceMonitor
from xdscp.server import StatusBoard, config_dump
from xdscp.translate import client_resources, route_hash_policies

log = structlog.get_logger(__name__)

SEED = 0
CACHED_SPLITS = 256


def endpoint_view(endpoint: Endpoint, source: str | None) -> dict[str, Any]:
    """One endpoint as the API shows it: its `ip:port` key, the model's fields (encoded by
    `xdscp.admin.encode`) and the source that owns it."""
    return {"key": endpoint.key, **plain(endpoint), "source": source}


def describe_services(
    services: Mapping[str, Service], owner: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """Every service, by name: its source, policy (the model's own form) and endpoints."""
    result = []
    for name in sorted(services):
        service, source = services[name], owner(name)
        result.append(
            {
                "name": name,
                "source": source,
                "policy": service.policy,
                "endpoints": [endpoint_view(e, source) for e in service.endpoints],
            }
        )
    return result


def split_json(result: SimulationResult) -> dict[str, Any]:
    """A simulation's outcome: per endpoint requests, share and weight share."""
    rows = [
        {
            "endpoint": row.key,
            "requests": row.requests,
            "share": row.share,
            "weight_share": row.weight_share,
        }
        for row in result.endpoints
    ]
    return {"requests": result.requests, "unserved": result.unserved, "split": rows}


Mix = Mapping[ClientKind, float]
"""Each client kind's fraction of a service's reported load (the fractions sum to 1)."""

ENVOY_ONLY: Mix = {ClientKind.ENVOY: 1.0}


def with_measured(
    described: dict[str, Any],
    measured: Mapping[str, tuple[float, float]] | None,
    predicted: Mapping[str, float] | None,
    mix: Mix | None = None,
) -> dict[str, Any]:
    """`described` with each endpoint's `measured_rps` and `measured_share` (its share of
    the service's reported requests per second, from the load book; null: none reported)
    beside `predicted_share` (the reference balancers' of the clients that reported, each
    kind's prediction, as `/api/predict` gives it, weighted by that kind's fraction of the
    reported load; null until computed, and for a service with no reported load). `load`:
    the service's reported requests per second in all, and whose prediction
    (`predicted_by`: each client kind's fraction of it, e.g. `{"envoy": 0.25, "grpc":
    0.75}`)."""
    if not measured:
        for endpoint in described["endpoints"]:
            endpoint.update(measured_rps=None, measured_share=None, predicted_share=None)
        described["load"] = {"rps": None, "predicted_by": None}
        return described
    for endpoint in described["endpoints"]:
        rps, share = measured.get(endpoint["key"], (0.0, 0.0))
        endpoint.update(measured_rps=round(rps, 3), measured_share=round(share, 4),
                        predicted_share=(predicted or {}).get(endpoint["key"]))  # fmt: skip
    total = sum(rps for rps, _ in measured.values())
    by = {str(kind): round(fraction, 4) for kind, fraction in (mix or ENVOY_ONLY).items()}
    described["load"] = {"rps": round(total, 3), "predicted_by": by}
    return described


def mixed_shares(
    predictions: Mapping[ClientKind, Mapping[str, float]], mix: Mix
) -> dict[str, float]:
    """Per endpoint, the sum over the client kinds of the kind's fraction of the load
    times the kind's predicted share: the split the reporting clients together are
    predicted to make."""
    out: dict[str, float] = {}
    for kind, fraction in mix.items():
        for endpoint, share in predictions[kind].items():
            out[endpoint] = out.get(endpoint, 0.0) + fraction * share
    return out


class Predictions:
    """Predicted shares for the services view, computed in a worker thread: a split costs
    20-200 ms, which the event loop (serving xDS) must not wait for. `shares` answers at once
    from what was computed, starts the computation of what was not (null meanwhile) and
    calls `on_ready` when it is done (the dashboard's services feed). Each (service, client
    kind) is computed once, and a mix of kinds reads each kind's."""

    def __init__(self, predictor: Predictor, on_ready: Callable[[], None] | None) -> None:
        self._predictor, self._on_ready = predictor, on_ready
        self._pending: set[tuple[Service, ClientKind]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: OrderedDict[tuple[Service, ClientKind], None] = OrderedDict()

    def shares(self, service: Service, mix: Mix | None = None) -> dict[str, float] | None:
        """The predicted share per endpoint key of the clients of `mix` (by default Envoy
        alone) together (`mixed_shares`), or None while one kind's is not yet computed (or
        its balancer refused the service)."""
        mix = mix or ENVOY_ONLY
        found: dict[ClientKind, dict[str, float]] = {}
        for kind in sorted(mix):
            shares = self._kind_shares(service, kind)
            if shares is None:
                return None
            found[kind] = shares
        return mixed_shares(found, mix)

    def _kind_shares(self, service: Service, kind: ClientKind) -> dict[str, float] | None:
        found = self._predictor.cached_split(service, kind, DEFAULT_REQUESTS)
        if found is not None:
            return {row["endpoint"]: row["share"] for row in found["split"]}
        key = (service, kind)
        if key in self._pending or key in self._failed:
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to hold up: compute now
            return self._compute_now(service, kind)
        self._pending.add(key)
        task = loop.create_task(self._compute(service, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    def _compute_now(self, service: Service, kind: ClientKind) -> dict[str, float] | None:
        self._split(service, kind)
        return None if (service, kind) in self._failed else self._kind_shares(service, kind)

    def _split(self, service: Service, kind: ClientKind) -> None:
        try:
            self._predictor.split(service, kind, DEFAULT_REQUESTS)
        except Exception as exc:  # a configuration the balancer refuses: shown as null
            log.warning("prediction_failed", service=service.name, client=str(kind),
                        error=str(exc))  # fmt: skip
            self._failed[(service, kind)] = None
            while len(self._failed) > CACHED_SPLITS:
                self._failed.popitem(last=False)

    async def _compute(self, service: Service, kind: ClientKind) -> None:
        try:
            await asyncio.to_thread(self._split, service, kind)
        finally:
            self._pending.discard((service, kind))
        if self._on_ready is not None:
            self._on_ready()


class Predictor:
    """Predicted splits and hash balancers, remembered per (service, client): the same
    service value always gives the same answer, so each is computed once per change. Called
    from worker threads (the admin server keeps the event loop free), hence the lock."""

    def __init__(self, size: int = CACHED_SPLITS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._splits: OrderedDict[tuple[Service, str, int], dict[str, Any]] = OrderedDict()
        self._balancers: OrderedDict[tuple[Service, str], Balancer] = OrderedDict()

    def _remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            while len(table) > self._size:
                table.popitem(last=False)

    def cached_split(
        self, service: Service, client: ClientKind, requests: int
    ) -> dict[str, Any] | None:
        """The split `split` computed before, or None (never computes)."""
        return self._splits.get((service, client, requests))

    def split(self, service: Service, client: ClientKind, requests: int) -> dict[str, Any]:
        """The split `xdscp simulate --client CLIENT --requests N --seed 0` prints."""
        key = (service, client, requests)
        found = self._splits.get(key)
        if found is None:
            result = simulate(
                service,
                client_resources(client),
                requests=requests,
                client=client,
                seed=SEED,
                route_policies=route_hash_policies(service, client),
            )
            found = split_json(result)
            self._remember(self._splits, key, found)
        return found

    def balancer(self, service: Service, client: ClientKind) -> Balancer:
        """The reference balancer `client` builds from the service's resources."""
        key = (service, client)
        lb = self._balancers.get(key)
        if lb is None:
            cluster, cla = client_resources(client)(service)
            lb = build_balancer(cluster, cla, client=client, rng=random.Random(SEED))
            self._remember(self._balancers, key, lb)
        return lb

    def predict(
        self, service: Service, query: PredictQuery, services: Mapping[str, Service] | None = None
    ) -> dict[str, Any]:
        """The split, and where the query's request goes when it describes one; for a
        service with routes (or a query with a path), the route the request takes among
        those served beside `services` and its split (`route`)."""
        answer: dict[str, Any] = {
            "service": service.name,
            "client": query.client,
            "policy": service.policy,
            "seed": SEED,
            **self.split(service, query.client, query.requests),
        }
        if query.has_request:
            answer["request"] = self.request(service, query)
        if service.routes is not None or query.path is not None:
            path = query.path or "/"
            prediction = simulate_routes(
                service, services or {}, path=path, headers=query.headers,
                requests=query.requests, client=query.client, seed=SEED,
            )  # fmt: skip
            answer["route"] = prediction_json(prediction, path, query.headers)
        return answer

    def request(self, service: Service, query: PredictQuery) -> dict[str, Any]:
        """Where one request goes: its hash (a decimal string: it is 64-bit) and endpoint."""
        asked = {
            "headers": dict(query.headers),
            "cookies": dict(query.cookies),
            "query": dict(query.query),
            "source_ip": query.source_ip,
        }
        policy = service.policy
        if not policy.is_hashing:
            note = f"{policy.lb.value} does not hash requests: any endpoint may take it"
            return {**asked, "hash": None, "endpoint": None, "note": note}
        route = route_request(
            self.balancer(service, query.client),
            headers=query.headers,
            cookies=query.cookies,
            query=query.query,
            source_ip=query.source_ip,
            route_policies=route_hash_policies(service, query.client),
        )
        if route.hash is None:
            inputs = ", ".join(str(h) for h in policy.hash_on) or "nothing"
            note = f"nothing in this request hashes (the policy hashes on {inputs}): any endpoint"
            return {**asked, "hash": None, "endpoint": None, "note": note}
        note = "" if route.endpoint else "no endpoint can take the request"
        return {**asked, "hash": str(route.hash), "endpoint": route.endpoint, "note": note}


class PlaneView:
    """What the admin server asks of the plane (`xdscp.admin.AdminView`), from its parts."""

    def __init__(
        self,
        *,
        status: StatusBoard,
        cache: SnapshotCache,
        pipeline: Pipeline,
        health: HealthStage,
        sources: SourceMonitor,
        load: PlaneLoad | None = None,
        on_prediction: Callable[[], None] | None = None,
        shared: SharedWeights | None = None,
        fleet: SharedLoad | None = None,
    ) -> None:
        """`on_prediction`: a predicted split the services view waited for is ready."""
        self._status, self._cache, self._pipeline = status, cache, pipeline
        self._health, self._sources, self._load = health, sources, load
        self._shared, self._fleet = shared, fleet
        self._predictor = Predictor()
        self._predictions = Predictions(self._predictor, on_prediction)

    def readiness(self) -> tuple[bool, str]:
        """Ready once every source has published and snapshots exist."""
        waiting = self._sources.waiting()
        if waiting:
            return False, f"waiting for sources: {'; '.join(waiting)}"
        if self._cache.get(str(ClientKind.ENVOY)) is None:
            return False, "no snapshot yet"
        return True, ""

    def sources_status(self) -> list[dict[str, Any]]:
        """Every source: ok, starting or degraded, since when and why (`/api/sources`)."""
        return [state.as_json() for state in self._sources.check()]

    def nodes_status(self) -> list[dict[str, Any]]:
        """Every connected node (`/debug/nodes`); a gRPC node also gets `policy_notes`: how
        gRPC clients behave differently from the policy of each service it subscribes to."""
        nodes = self._status.as_json()
        notes = self._pipeline.notes(ClientKind.GRPC)
        for node in nodes:
            if node["client"] != str(ClientKind.GRPC):
                continue
            subscribed = node["types"].get("Cluster", {}).get("subscribed", [])
            names = notes.keys() if subscribed == "*" else subscribed
            found = {name: list(notes[name]) for name in names if name in notes}
            if found:
                node["policy_notes"] = found
        return nodes

    def snapshots_status(self) -> dict[str, Any]:
        """Per-type versions per node group (`/status/snapshots`)."""
        return self._cache.groups()

    def resources_status(self) -> dict[str, Any]:
        """Every resource name and version per node group and type (`/debug/resources`)."""
        return self._cache.resources()

    def services_view(self) -> list[dict[str, Any]]:
        """Every served service: its source, policy, endpoints and routes (`/api/services`;
        `routes_view`), each endpoint's measured load beside the predicted share of the
        clients that reported it (`with_measured`)."""
        services = self._pipeline.services
        described = describe_services(services, self._pipeline.source_of)
        for entry in described:
            entry["routes"] = routes_view(services[entry["name"]], services)
        measured = {} if self._load is None else self._load.measured()
        kinds = {} if self._load is None else self._load.kinds()
        out = []
        for entry in described:
            load, mix = measured.get(entry["name"]), kinds.get(entry["name"])
            service = services[entry["name"]]
            predicted = self._predictions.shares(service, mix) if load else None
            out.append(with_measured(entry, load, predicted, mix))
        return out

    def predict(self, query: PredictQuery) -> dict[str, Any] | None:
        """The reference balancer's split for a served service (`/api/predict`); None if
        no such service is served."""
        service = self._pipeline.services.get(query.service)
        if service is None:
            return None
        return self._predictor.predict(service, query, self._pipeline.services)

    def config_dump(self, node_id: str, type_name: str = "") -> dict[str, Any] | None:
        """What node `node_id` was sent and accepted, decoded (`/debug/config_dump`); None
        when no such node is connected."""
        return config_dump(self._status, node_id, type_name)

    def nack_history(self, node_id: str | None = None) -> list[dict[str, str]]:
        """The NACKs of every connected node (or one), oldest first (`/debug/nacks`)."""
        return self._status.nack_history(node_id)

    def health_status(self) -> dict[str, Any]:
        """xdscp's own health checks (`/debug/health`)."""
        return self._health.status()

    def weights_status(self) -> dict[str, Any]:
        """The adaptive services' weights (`/debug/weights`): per service what is served,
        what this replica's loop decided and whether the publisher's record is served; with
        etcd, whether this replica publishes and who does, and the other replicas whose
        clients' load its loops read."""
        weights = self._pipeline.weights
        decided = weights.decided()
        election = None if self._shared is None else self._shared.election
        return {
            "mode": "local" if election is None else "etcd",
            "publishing": election is None or election.leading,
            "publisher": None if election is None else election.leader,
            "load_from": None if self._fleet is None else sorted(self._fleet.fleet.replicas),
            "services": {
                name: {
                    "served": weights.weights(name),
                    "decided": decided[name],
                    "imposed": weights.imposed(name),
                }
                for name in sorted(decided)
            },
        }
