"""A minimal Service -> (Cluster, ClusterLoadAssignment) translation for `xdscp simulate`.

`xdscp.translate` (`cluster_for`, `load_assignment_for`) is the real translation and is used
whenever it is importable; this stand-in only keeps `simulate` usable without it. It maps each
policy onto the plainest resources that express it:

- round_robin / weighted_round_robin → `ROUND_ROBIN`; random → `RANDOM`;
  least_request → `LEAST_REQUEST` (choice_count, active_request_bias);
- ring_hash → typed RingHash, maglev → typed Maglev, both carrying the `hash_on` policy;
- source_ip_hash and weighted_random → typed [Maglev, RingHash] (Envoy takes Maglev, gRPC the
  ring), hashing on the source IP or on nothing (a random hash: weighted random).

One LocalityLbEndpoints per (priority, locality), always with a locality weight (gRPC drops
unweighted localities): the sum of its endpoint weights, so gRPC's round robin (which ignores
endpoint weights but honours locality weights) still follows the weights across localities —
except for hash-based policies, where gRPC weighs ring entries by endpoint weight x locality
weight, so every locality weighs 1 there.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2

from xdscp.model import BalancingPolicy, HashFunction, HashOn, HashSource, Health, LbPolicy, Service

_HEALTH = {
    Health.HEALTHY: health_check_pb2.HEALTHY,
    Health.UNHEALTHY: health_check_pb2.UNHEALTHY,
    Health.DEGRADED: health_check_pb2.DEGRADED,
    Health.DRAINING: health_check_pb2.DRAINING,
}
_ENUM = {
    LbPolicy.ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    LbPolicy.WEIGHTED_ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    LbPolicy.RANDOM: cluster_pb2.Cluster.RANDOM,
    LbPolicy.LEAST_REQUEST: cluster_pb2.Cluster.LEAST_REQUEST,
}


def hash_policies(hash_on: tuple[HashOn, ...]) -> list[Any]:
    """Envoy RouteAction.HashPolicy messages for a service's `hash_on` list."""
    policies = []
    for item in hash_on:
        policy = route_components_pb2.RouteAction.HashPolicy(terminal=item.terminal)
        if item.source is HashSource.HEADER:
            policy.header.header_name = item.name
        elif item.source is HashSource.COOKIE:
            policy.cookie.name = item.name
        elif item.source is HashSource.QUERY_PARAMETER:
            policy.query_parameter.name = item.name
        else:
            policy.connection_properties.source_ip = True
        policies.append(policy)
    return policies


def _ring(policy: BalancingPolicy) -> Any:
    ring = ring_hash_pb2.RingHash(
        hash_function=ring_hash_pb2.RingHash.MURMUR_HASH_2
        if policy.hash_function is HashFunction.MURMUR_HASH_2
        else ring_hash_pb2.RingHash.XX_HASH
    )
    ring.minimum_ring_size.value = policy.min_ring_size
    ring.maximum_ring_size.value = policy.max_ring_size
    ring.consistent_hashing_lb_config.hash_policy.extend(hash_policies(policy.hash_on))
    if policy.locality_weighted:
        ring.locality_weighted_lb_config.SetInParent()
    return ring


def _maglev(policy: BalancingPolicy) -> Any:
    maglev = maglev_pb2.Maglev()
    maglev.table_size.value = policy.maglev_table_size
    maglev.consistent_hashing_lb_config.hash_policy.extend(hash_policies(policy.hash_on))
    if policy.locality_weighted:
        maglev.locality_weighted_lb_config.SetInParent()
    return maglev


def cluster_for(service: Service) -> Any:
    """An EDS Cluster whose balancing expresses the service's policy."""
    policy = service.policy
    cluster = cluster_pb2.Cluster(name=service.name, type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.common_lb_config.healthy_panic_threshold.value = policy.panic_threshold
    if policy.locality_weighted:
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
    if policy.lb in _ENUM:
        cluster.lb_policy = _ENUM[policy.lb]
        if policy.lb is LbPolicy.LEAST_REQUEST:
            cluster.least_request_lb_config.choice_count.value = policy.choice_count
            if policy.active_request_bias != 1.0:
                bias = cluster.least_request_lb_config.active_request_bias
                bias.default_value = policy.active_request_bias
                bias.runtime_key = f"xdscp.{service.name}.active_request_bias"
        return cluster
    typed: list[Any]
    if policy.lb is LbPolicy.RING_HASH:
        typed = [_ring(policy)]
    elif policy.lb is LbPolicy.MAGLEV:
        typed = [_maglev(policy)]
    else:  # source_ip_hash, weighted_random
        typed = [_maglev(policy), _ring(policy)]
    for message in typed:
        entry = cluster.load_balancing_policy.policies.add()
        entry.typed_extension_config.name = message.DESCRIPTOR.full_name
        entry.typed_extension_config.typed_config.Pack(message)
    return cluster


def load_assignment_for(service: Service) -> Any:
    """The service's ClusterLoadAssignment: one group per (priority, locality)."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=service.name)
    cla.policy.overprovisioning_factor.value = service.policy.overprovisioning_factor
    groups: dict[tuple[int, Any], Any] = {}
    hashing = service.policy.is_hashing
    for endpoint in service.endpoints:
        key = (endpoint.priority, endpoint.locality)
        group = groups.get(key)
        if group is None:
            group = cla.endpoints.add(priority=endpoint.priority)
            group.locality.region = endpoint.locality.region
            group.locality.zone = endpoint.locality.zone
            group.locality.sub_zone = endpoint.locality.sub_zone
            groups[key] = group
        weight = group.load_balancing_weight
        weight.value = 1 if hashing else weight.value + endpoint.weight
        lb_endpoint = group.lb_endpoints.add(health_status=_HEALTH[endpoint.health])
        lb_endpoint.endpoint.address.socket_address.address = endpoint.address
        lb_endpoint.endpoint.address.socket_address.port_value = endpoint.port
        lb_endpoint.load_balancing_weight.value = endpoint.weight
        if endpoint.hash_key:
            envoy_lb = lb_endpoint.metadata.filter_metadata["envoy.lb"]
            envoy_lb.fields["hash_key"].string_value = endpoint.hash_key
    return cla
