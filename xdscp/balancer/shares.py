"""The long-run share of requests each host receives, computed from a balancer's state.

No sampling: Envoy's priority loads (healthy, degraded, panic), its sources' weights (EDF
weights, or equal shares for plain rotation and RANDOM), its locality scheduler's effective
weights and its hash tables' normalized weights; gRPC's locality weights and, inside a
locality, its rotation (or ring weights). Hash balancers are given the weights their tables
are built from, not the tables' discretized shares. Least request is given its idle weights.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from xdscp.balancer.base import Balancer
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.envoy_lb import ClientSideWrrBalancer, RandomBalancer, ZoneAwareBalancer
from xdscp.balancer.grpc_lb import GrpcBalancer
from xdscp.balancer.hosts import Host, HostSet
from xdscp.balancer.policy import Kind
from xdscp.errors import BalancerError

Shares = dict[str, float]


def _spread(
    out: defaultdict[str, float],
    hosts: Sequence[Host],
    share: float,
    weight: Callable[[Host], float] = lambda _: 1.0,
) -> None:
    total = sum(weight(h) for h in hosts)
    if not hosts or share == 0.0 or total == 0.0:
        return
    for host in hosts:
        out[host.key] += share * weight(host) / total


def _weight(lb: ZoneAwareBalancer) -> Callable[[Host], float]:
    """Random and client-side WRR without load reports ignore weights; the others pick by
    the EDF weight (slow start applied; least request at its current active requests)."""
    if isinstance(lb, RandomBalancer | ClientSideWrrBalancer):
        return lambda _: 1.0
    return lb.host_weight


def _zone_aware_priority(
    lb: ZoneAwareBalancer, out: defaultdict[str, float], host_set: HostSet, degraded: bool
) -> None:
    p = host_set.priority
    share = (lb.load.degraded[p] if degraded else lb.load.healthy[p]) / 100.0
    if lb.load.panic[p]:
        _spread(out, host_set.hosts, share, _weight(lb))
        return
    weights = lb.locality_weights(p, degraded=degraded)
    hosts = host_set.degraded if degraded else host_set.healthy
    if weights is None:
        _spread(out, hosts, share, _weight(lb))
        return
    groups = host_set.degraded_per_locality if degraded else host_set.healthy_per_locality
    total = sum(weights.values())
    for index, weight in weights.items():
        _spread(out, groups[index], share * weight / total, _weight(lb))


def _hash(lb: HashBalancer, out: defaultdict[str, float]) -> None:
    for host_set in lb.host_sets:
        p = host_set.priority
        share = (lb.load.healthy[p] + lb.load.degraded[p]) / 100.0
        entries = lb.weighted_hosts[p]
        total = sum(e.weight for e in entries)
        for entry in entries:
            out[entry.host.key] += share * entry.weight / total


def _grpc(lb: GrpcBalancer, out: defaultdict[str, float]) -> None:
    hosts = lb.active_hosts
    if not hosts:
        return
    if lb.settings.kind is Kind.RING_HASH:
        total = sum(h.weight * h.locality_weight for h in hosts)
        for host in hosts:
            out[host.key] += host.weight * host.locality_weight / total
    elif lb.settings.kind is Kind.PICK_FIRST:
        out[hosts[0].key] = 1.0
    elif not lb.settings.wrr_locality:
        _spread(out, hosts, 1.0)
    else:
        groups: dict[object, list[Host]] = defaultdict(list)
        for host in hosts:
            groups[host.locality].append(host)
        total = sum(g[0].locality_weight for g in groups.values())
        for group in groups.values():
            _spread(out, group, group[0].locality_weight / total)


def expected_shares(lb: Balancer) -> Shares:
    """`ip:port` → the fraction of requests `lb` sends there in the long run (hosts that get
    none are left out)."""
    out: defaultdict[str, float] = defaultdict(float)
    if isinstance(lb, GrpcBalancer):
        _grpc(lb, out)
    elif isinstance(lb, HashBalancer):
        _hash(lb, out)
    elif isinstance(lb, ZoneAwareBalancer):
        for host_set in lb.host_sets:
            _zone_aware_priority(lb, out, host_set, degraded=False)
            _zone_aware_priority(lb, out, host_set, degraded=True)
    else:
        raise BalancerError(f"no share model for {type(lb).__name__}")
    return {k: v for k, v in out.items() if v > 0.0}
