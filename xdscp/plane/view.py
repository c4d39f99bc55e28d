"""The operators' view of the plane: services and predictions for the admin API.

The admin server's `/api/services` and `/api/predict` (and the dashboard) read these. Values
hold model objects as they are (a policy, an endpoint's locality); the admin server's one
encoder (`xdscp.admin.encode`) writes them in the model's own form. A
prediction is the reference balancer run over the very Cluster and ClusterLoadAssignment the
client is sent (`xdscp.translate.client_resources`), exactly as `xdscp simulate` runs it, with
a fixed seed so the same service always shows the same split.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from xdscp.admin import PredictQuery
from xdscp.admin.encode import plain
from xdscp.balancer import Balancer, SimulationResult, build_balancer, route_request, simulate
from xdscp.model import ClientKind, Endpoint, Service
from xdscp.translate import client_resources, route_hash_policies

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

    def predict(self, service: Service, query: PredictQuery) -> dict[str, Any]:
        """The split, and where the query's request goes when it describes one."""
        answer: dict[str, Any] = {
            "service": service.name,
            "client": query.client,
            "policy": service.policy,
            "seed": SEED,
            **self.split(service, query.client, query.requests),
        }
        if query.has_request:
            answer["request"] = self.request(service, query)
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
