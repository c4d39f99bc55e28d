"""Service → resources for proxyless gRPC clients (target `xds:///SERVICE`).

gRPC accepts less than Envoy (it rejects a whole CDS response over one policy it does not
know) and subscribes to everything by name: a Listener named exactly as the target, holding
an `api_listener`; its RouteConfiguration; the Cluster; the ClusterLoadAssignment.

Policy lists sent (the first entry the client supports wins) and locality weights:

- round_robin: [wrr_locality(round_robin)]; locality weight = its endpoint count (equal
  shares).
- weighted_round_robin: [wrr_locality(round_robin)]; one locality per endpoint, weighing the
  endpoint's weight (gRPC's round robin honours locality weights, not endpoint weights).
- client_side_weighted_round_robin: [wrr_locality([client_side_weighted_round_robin,
  round_robin])], localities as round_robin's: the endpoints of a locality share one picker,
  which weighs each by its ORCA reports (one locality per endpoint would leave each picker one
  endpoint, and the weights nothing to do). No endpoint weights: the reports decide. gRPC
  picks the locality by its weight (endpoint count) first; Envoy weighs a priority's
  endpoints together (a note says so when a priority spans several localities).
- random / weighted_random: [ring_hash] with no hash policy (a random hash per request),
  endpoint weights 1 / as registered; localities weigh 1.
- least_request: [wrr_locality([least_request, round_robin])]: grpc-go takes least request,
  grpcio round robin.
- ring_hash: [ring_hash] (XX_HASH, ring of 4096, the client's cap); localities weigh 1
  (gRPC multiplies endpoint and locality weights).
- maglev: [maglev, ring_hash]; source_ip_hash: [ring_hash] hashing the channel id.

Failover: gRPC implements no overprovisioning factor and no panic. When Envoy would split a
service's traffic over priorities (a priority losing healthy hosts), over healthy and degraded
hosts, or balance a priority in panic, the CLA carries Envoy's split instead: one priority
whose localities (one per original priority, locality and host class, sub_zone suffixed
`/pN/healthy|degraded|panic`) weigh the share Envoy gives them (`translate/failover.py`). The
endpoints of degraded and panic groups are sent as healthy, since gRPC drops any other status.
Resilience (`translate/resilience.py`): outlier detection (success rate, failure percentage),
`max_requests`, retries on gRPC status names and the timeout (as `max_stream_duration`) are
sent; what gRPC does not do is in `grpc_warnings`.

Hash inputs go in the route (gRPC ignores the cluster-level ones): headers as they are;
cookie, query parameter and source IP have no gRPC meaning and become the channel id.

Each list is proven with real grpcio 1.85 and grpc-go 1.85 clients (tests/integration/grpc):
both ACK every policy, and each takes the first entry it supports.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from fractions import Fraction
from itertools import groupby
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2

from xdscp.model import ClientSideWrr, Endpoint, HashInput, Health, LbPolicy, Locality, Service
from xdscp.translate.envoy import ads_config_source, lb_endpoint
from xdscp.translate.failover import UINT32_MAX, SpillGroup, Unit, integer_weights, spill_groups
from xdscp.translate.lb import client_side_wrr_config, hash_policy, maglev_config, set_policies
from xdscp.translate.options import LRS_METRICS
from xdscp.translate.resilience import (
    grpc_cluster_resilience,
    grpc_route_action,
    resilience_notes,
)
from xdscp.translate.routes import fault_filter, grpc_route, served_routes

GRPC_RING_CAP = 4096
CHANNEL_ID = "io.grpc.channel_id"
_HashPolicy = route_components_pb2.RouteAction.HashPolicy
_RING_POLICIES = {
    LbPolicy.RANDOM, LbPolicy.WEIGHTED_RANDOM, LbPolicy.RING_HASH, LbPolicy.MAGLEV,
    LbPolicy.SOURCE_IP_HASH,
}  # fmt: skip
_UNWEIGHTED = {LbPolicy.ROUND_ROBIN, LbPolicy.RANDOM, LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN}
_Group = tuple[int, Locality, list[Endpoint], int]


def grpc_warnings(service: Service) -> list[str]:
    """What a gRPC client will do differently from the policy's name, for logs and status."""
    policy = service.policy
    notes = []
    if policy.lb is LbPolicy.LEAST_REQUEST:
        notes.append("least_request: grpc-go balances by least request; grpcio by round robin")
        if policy.adaptive_weights is not None:
            notes.append("adaptive_weights: gRPC's least request ignores endpoint weights")
    if policy.lb is LbPolicy.MAGLEV:
        notes.append("maglev: gRPC clients use ring hash (same keys stick, other placement)")
    if policy.hash_function.value == "murmur_hash_2" and policy.lb in _RING_POLICIES:
        notes.append("ring_hash: gRPC clients hash with XX_HASH only")
    if any(h.source is not HashInput.HEADER for h in policy.hash_on):
        notes.append("hash_on: gRPC hashes headers only; other inputs become the channel id")
    notes.extend(_client_side_wrr_notes(service))
    notes.extend(resilience_notes(policy))
    return notes


def _localities_share(service: Service) -> bool:
    """True when a priority's usable endpoints span several localities."""
    seen: dict[int, set[Locality]] = {}
    for e in service.endpoints:
        if e.health is Health.HEALTHY:
            seen.setdefault(e.priority, set()).add(e.locality)
    return any(len(localities) > 1 for localities in seen.values())


def _client_side_wrr_notes(service: Service) -> list[str]:
    """How each gRPC client weighs by load (measured: tests/integration/orca)."""
    settings = service.policy.client_side_wrr
    if settings is None:
        return []
    reports = (
        "the out-of-band OpenRcaService stream (per-call trailers ignored)"
        if settings.enable_oob_load_report
        else "the endpoint-load-metrics-bin trailer of each call"
    )
    notes = [
        f"client_side_weighted_round_robin: grpc-go and grpcio (C-core) both run it, weighing"
        f" each endpoint by {reports}: rps_fractional / (application_utilization, else"
        " cpu_utilization); an endpoint whose reports lack rps_fractional or a utilization"
        " gets the others' mean weight (Envoy rejects such a report: the median weight)"
    ]
    if _localities_share(service):
        notes.append(
            "client_side_weighted_round_robin: gRPC picks a locality by its weight (its endpoint"
            " count), then weighs that locality's endpoints by their reports; Envoy weighs all"
            " the endpoints of a priority together"
        )
    if settings.metric_names_for_computing_utilization:
        notes.append(
            "client_side_weighted_round_robin: gRPC ignores"
            " metric_names_for_computing_utilization (Envoy's alone)"
        )
    return notes


def _ring() -> Any:
    # The client caps its ring at 4096 entries; asking for that many from the start gives the
    # finest shares it can hold (its default minimum, 1024, is coarse for uneven weights).
    ring = ring_hash_pb2.RingHash(hash_function=ring_hash_pb2.RingHash.XX_HASH)
    ring.minimum_ring_size.value = GRPC_RING_CAP
    ring.maximum_ring_size.value = GRPC_RING_CAP
    return ring


def _by_locality(*children: tuple[str, Any]) -> tuple[str, Any]:
    """wrr_locality over `children` (the first the client supports picks endpoints):
    localities are chosen by their weight. A bare typed round_robin would make gRPC rotate
    over every endpoint, ignoring localities."""
    wrapper = wrr_locality_pb2.WrrLocality()
    for name, child in children:
        entry = wrapper.endpoint_picking_policy.policies.add()
        entry.typed_extension_config.name = f"envoy.load_balancing_policies.{name}"
        entry.typed_extension_config.typed_config.Pack(child, deterministic=True)
    return "wrr_locality", wrapper


def _policies(service: Service) -> list[tuple[str, Any]]:
    policy = service.policy
    round_robin = ("round_robin", round_robin_pb2.RoundRobin())
    match policy.lb:
        case LbPolicy.ROUND_ROBIN | LbPolicy.WEIGHTED_ROUND_ROBIN:
            return [_by_locality(round_robin)]
        case LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN:
            config = client_side_wrr_config(policy.client_side_wrr or ClientSideWrr())
            return [_by_locality(("client_side_weighted_round_robin", config), round_robin)]
        case LbPolicy.LEAST_REQUEST:
            least = least_request_pb2.LeastRequest()
            if policy.choice_count != 2:
                least.choice_count.value = policy.choice_count
            return [_by_locality(("least_request", least), round_robin)]
        case LbPolicy.MAGLEV:
            plain = replace(policy, hash_on=(), hash_balance_factor=None)
            return [("maglev", maglev_config(plain)), ("ring_hash", _ring())]
        case _:
            return [("ring_hash", _ring())]


def grpc_cluster(
    service: Service,
    connect_timeout_ms: int = 1000,
    *,
    load_reporting: bool = True,
    load_metrics: tuple[str, ...] = LRS_METRICS,
) -> Any:
    """The EDS Cluster for gRPC: a policy list whose first entry the client supports wins;
    with `load_reporting`, `lrs_server: {self: {}}`: the client reports its load (LRS) to
    the server it got the cluster from (grpcio and grpc-go, per locality), with the ORCA
    metrics `load_metrics` names (`lrs_report_endpoint_metrics`) in each locality's stats
    (gRFC A85)."""
    cluster = cluster_pb2.Cluster(name=service.name, type=cluster_pb2.Cluster.EDS)
    cluster.connect_timeout.FromMilliseconds(connect_timeout_ms)
    cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    if load_reporting:
        cluster.lrs_server.self.SetInParent()
        cluster.lrs_report_endpoint_metrics.extend(load_metrics)
    set_policies(cluster, _policies(service))
    grpc_cluster_resilience(cluster, service.policy)
    return cluster


def _unit(service: Service) -> Unit:
    """The endpoint weight both clients honour: registered weights for weighted round robin
    and the weighted hash policies, else 1 (round robin and random rotate evenly; gRPC's
    least request ignores endpoint weights)."""
    lb = service.policy.lb
    if lb is LbPolicy.WEIGHTED_ROUND_ROBIN or (lb in _RING_POLICIES and lb is not LbPolicy.RANDOM):
        return lambda e: e.weight
    return lambda _: 1


def _own_locality(e: Endpoint, suffix: str = "") -> Locality:
    """A locality of its own for `e` (gRPC weighs localities, not endpoints, in round robin)."""
    return replace(e.locality, sub_zone=f"{e.locality.sub_zone}{suffix}/{e.key}")


def _spilled(service: Service, groups: list[SpillGroup]) -> list[_Group]:
    """Envoy's spill as one priority: each (priority, locality, health class) becomes a
    locality weighted by the share of requests Envoy gives it. Endpoints Envoy would use in
    panic or for its degraded load are sent as healthy, as gRPC drops any other status."""
    lb, unit = service.policy.lb, _unit(service)
    parts: list[tuple[Locality, list[Endpoint], Fraction]] = []
    for g in groups:
        suffix = f"/p{g.priority}/{g.kind}"
        members = [replace(e, health=Health.HEALTHY) for e in g.endpoints]
        total = sum(unit(e) for e in members)
        if lb is LbPolicy.WEIGHTED_ROUND_ROBIN:
            parts += [(_own_locality(e, suffix), [e], g.share * unit(e) / total) for e in members]
        elif lb in _RING_POLICIES:  # gRPC's ring weighs endpoint weight x locality weight
            parts.append((_sub_zone(g.locality, suffix), members, g.share / total))
        else:
            parts.append((_sub_zone(g.locality, suffix), members, g.share))
    if not parts:  # e.g. a hash table with no healthy host: Envoy serves nothing either
        return []
    heaviest = max(unit(e) for _, members, _ in parts for e in members)
    weights = integer_weights([share for _, _, share in parts], cap=UINT32_MAX // heaviest)
    return [(0, loc, members, w) for (loc, members, _), w in zip(parts, weights, strict=True)]


def _sub_zone(locality: Locality, suffix: str) -> Locality:
    return replace(locality, sub_zone=locality.sub_zone + suffix)


def _groups(service: Service) -> list[_Group]:
    """(priority, locality, endpoints, locality weight), priorities renumbered 0, 1, 2...

    gRPC rejects priority gaps and drops unweighted localities, ignores endpoint weights under
    round robin and multiplies endpoint by locality weight under ring hash. When Envoy would
    split the traffic over priorities (or be in panic), the split is sent instead.
    """
    spill = spill_groups(service, _unit(service))
    if spill is not None:
        return _spilled(service, spill)
    lb = service.policy.lb
    usable = [e for e in service.endpoints if e.health is Health.HEALTHY]
    out: list[_Group] = []
    for rank, (_, members) in enumerate(groupby(usable, key=lambda e: e.priority)):
        endpoints = list(members)
        if lb is LbPolicy.WEIGHTED_ROUND_ROBIN:  # one locality per endpoint carries its weight
            out += [(rank, _own_locality(e), [e], e.weight) for e in endpoints]
            continue
        for locality, grouped in groupby(endpoints, key=lambda e: e.locality):
            group = list(grouped)
            out.append((rank, locality, group, 1 if lb in _RING_POLICIES else len(group)))
    return out


def grpc_load_assignment(service: Service) -> Any:
    """The ClusterLoadAssignment for gRPC: usable endpoints, every locality weighted."""
    weighted = service.policy.lb not in _UNWEIGHTED
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=service.name)
    for priority, locality, group, weight in _groups(service):
        lle = cla.endpoints.add(priority=priority)
        lle.locality.region, lle.locality.zone, lle.locality.sub_zone = (
            locality.region, locality.zone, locality.sub_zone,
        )  # fmt: skip
        lle.load_balancing_weight.value = weight
        lle.lb_endpoints.extend(lb_endpoint(e, weighted=weighted) for e in group)
    return cla


def route_hash_policies_for(service: Service) -> list[Any]:
    """The route hash policies a gRPC client reads (it ignores the cluster-level ones)."""
    policy = service.policy
    if policy.lb not in {LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH}:
        return []
    headers = [hash_policy(h) for h in policy.hash_on if h.source is HashInput.HEADER]
    if len(headers) < len(policy.hash_on) or policy.lb is LbPolicy.SOURCE_IP_HASH:
        headers.append(_HashPolicy(filter_state=_HashPolicy.FilterState(key=CHANNEL_ID)))
    return headers


def grpc_route_configuration(service: Service, present: Collection[str] = ()) -> Any:
    """One virtual host for any authority: the service's routes (targets cut to the
    `present` services), else every method to the service's cluster."""
    if service.routes is not None:
        hashing = route_hash_policies_for(service)
        routes = [grpc_route(r, service, hashing) for r in served_routes(service, present)]
    else:
        action = route_components_pb2.RouteAction(cluster=service.name)
        action.hash_policy.extend(route_hash_policies_for(service))
        grpc_route_action(action, service.policy)
        routes = [route_components_pb2.Route(route=action)]
        routes[0].match.prefix = ""
    host = route_components_pb2.VirtualHost(name=service.name, domains=["*"], routes=routes)
    return route_pb2.RouteConfiguration(name=service.name, virtual_hosts=[host])


def grpc_listener(service: Service) -> Any:
    """The Listener named as the target, with an api_listener (HCM, router, RDS over ADS);
    the fault filter (optional) before the router when the service's routes inject faults."""
    manager = hcm_pb2.HttpConnectionManager(stat_prefix=service.name)
    manager.rds.route_config_name = service.name
    manager.rds.config_source.CopyFrom(ads_config_source())
    if service.routes is not None and service.routes.uses_faults:
        manager.http_filters.append(fault_filter(optional=True))
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router(), deterministic=True)
    listener = listener_pb2.Listener(name=service.name)
    listener.api_listener.api_listener.Pack(manager, deterministic=True)
    return listener


__all__ = [
    "grpc_cluster",
    "grpc_listener",
    "grpc_load_assignment",
    "grpc_route_configuration",
    "grpc_warnings",
]
