"""Cluster, ClusterLoadAssignment and hash-policy builders for the parity cases.

Every case builds the protos once; the same objects feed the reference balancer and (turned
into a static cluster) the real Envoy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2

from tests.harness.balancer import locality_group

HashPolicy = route_components_pb2.RouteAction.HashPolicy
UNHEALTHY = health_check_pb2.UNHEALTHY
HEALTHY = health_check_pb2.HEALTHY
DEGRADED = health_check_pb2.DEGRADED
DRAINING = health_check_pb2.DRAINING

RoundRobin = round_robin_pb2.RoundRobin
LeastRequest = least_request_pb2.LeastRequest
Random = random_pb2.Random
RingHash = ring_hash_pb2.RingHash
Maglev = maglev_pb2.Maglev


@dataclass(frozen=True, slots=True)
class Ep:
    """One endpoint: a backend port, its weight (None: unset), health, priority, locality."""

    port: int
    weight: int | None = None
    health: int = health_check_pb2.UNKNOWN
    priority: int = 0
    zone: str = ""
    locality_weight: int | None = None


def cla(name: str, endpoints: Sequence[Ep], *, overprovisioning: int | None = None) -> Any:
    """A CLA with one LocalityLbEndpoints per (zone, priority), in first-seen order."""
    message = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    groups: dict[tuple[str, int], Any] = {}
    for ep in endpoints:
        lb_endpoint = locality_group(message, groups, ep).lb_endpoints.add(health_status=ep.health)
        lb_endpoint.endpoint.address.socket_address.address = "127.0.0.1"
        lb_endpoint.endpoint.address.socket_address.port_value = ep.port
        if ep.weight is not None:
            lb_endpoint.load_balancing_weight.value = ep.weight
    if overprovisioning is not None:
        message.policy.overprovisioning_factor.value = overprovisioning
    return message


def enum_cluster(name: str, policy: str, **lb_config: Any) -> Any:
    """An EDS cluster with `lb_policy` = `policy` (enum name) and optional `*_lb_config`s."""
    cluster = cluster_pb2.Cluster(name=name, lb_policy=cluster_pb2.Cluster.LbPolicy.Value(policy))
    cluster.type = cluster_pb2.Cluster.EDS
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.connect_timeout.FromMilliseconds(1000)
    for field_name, value in lb_config.items():
        getattr(cluster, field_name).CopyFrom(value)
    return cluster


def typed_cluster(name: str, config: Any) -> Any:
    """An EDS cluster whose `load_balancing_policy` holds one typed policy `config`."""
    cluster = enum_cluster(name, "ROUND_ROBIN")
    cluster.ClearField("lb_policy")
    policy = cluster.load_balancing_policy.policies.add()
    policy.typed_extension_config.name = f"xdscp.parity.{config.DESCRIPTOR.name}"
    policy.typed_extension_config.typed_config.Pack(config)
    return cluster


def ring_config(**fields: Any) -> Any:
    """A typed RingHash config (min/max ring sizes are plain ints here)."""
    message = ring_hash_pb2.RingHash()
    for key in ("minimum_ring_size", "maximum_ring_size"):
        if key in fields:
            getattr(message, key).value = fields.pop(key)
    for key, value in fields.items():
        setattr(message, key, value)
    return message


def header_policy(name: str, *, terminal: bool = False) -> Any:
    """Hash on a request header."""
    return HashPolicy(header=HashPolicy.Header(header_name=name), terminal=terminal)


def cookie_policy(name: str) -> Any:
    """Hash on a cookie (no ttl: Envoy never mints one)."""
    return HashPolicy(cookie=HashPolicy.Cookie(name=name))


def query_policy(name: str) -> Any:
    """Hash on a query parameter."""
    return HashPolicy(query_parameter=HashPolicy.QueryParameter(name=name))


def source_ip_policy() -> Any:
    """Hash on the client's IP address."""
    return HashPolicy(connection_properties=HashPolicy.ConnectionProperties(source_ip=True))
