"""Cluster and ClusterLoadAssignment builders for the balancer tests."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from xdscp.balancer import Balancer, build_balancer
from xdscp.model import parse_host_port

HEALTH = {
    "unknown": health_check_pb2.UNKNOWN,
    "healthy": health_check_pb2.HEALTHY,
    "unhealthy": health_check_pb2.UNHEALTHY,
    "timeout": health_check_pb2.TIMEOUT,
    "degraded": health_check_pb2.DEGRADED,
    "draining": health_check_pb2.DRAINING,
}


@dataclass(frozen=True)
class Ep:
    """One endpoint of a test CLA."""

    address: str
    weight: int | None = 1
    health: str = "healthy"
    zone: str = ""
    priority: int = 0
    locality_weight: int | None = None
    hash_key: str | None = None
    hostname: str = ""


def eps(*weights: int, base: str = "10.0.0.") -> list[Ep]:
    """Endpoints 10.0.0.1:80, 10.0.0.2:80, ... with the given weights."""
    return [Ep(f"{base}{i}:80", w) for i, w in enumerate(weights, start=1)]


class Grouped(Protocol):
    """What places an endpoint in a CLA's LocalityLbEndpoints."""

    @property
    def zone(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def locality_weight(self) -> int | None: ...


def locality_group(message: Any, groups: dict[tuple[str, int], Any], ep: Grouped) -> Any:
    """The LocalityLbEndpoints of `ep`'s (zone, priority) in the CLA `message`, added (with
    the locality weight) the first time that pair is seen; `groups` remembers them."""
    key = (ep.zone, ep.priority)
    if key not in groups:
        group = message.endpoints.add(priority=ep.priority)
        group.locality.zone = ep.zone
        if ep.locality_weight is not None:
            group.load_balancing_weight.value = ep.locality_weight
        groups[key] = group
    return groups[key]


def cla(
    endpoints: Iterable[Ep],
    *,
    overprovisioning: int | None = None,
    weighted_priority_health: bool = False,
) -> Any:
    """A CLA with one LocalityLbEndpoints per (zone, priority), in first-seen order."""
    message = endpoint_pb2.ClusterLoadAssignment(cluster_name="svc")
    groups: dict[tuple[str, int], Any] = {}
    for ep in endpoints:
        lb = locality_group(message, groups, ep).lb_endpoints.add(health_status=HEALTH[ep.health])
        ip, port = parse_host_port(ep.address)
        lb.endpoint.address.socket_address.address = ip
        lb.endpoint.address.socket_address.port_value = port
        lb.endpoint.hostname = ep.hostname
        if ep.weight is not None:
            lb.load_balancing_weight.value = ep.weight
        if ep.hash_key is not None:
            lb.metadata.filter_metadata["envoy.lb"].fields["hash_key"].string_value = ep.hash_key
    if overprovisioning is not None:
        message.policy.overprovisioning_factor.value = overprovisioning
    if weighted_priority_health:
        message.policy.weighted_priority_health = True
    return message


def cluster(
    policy: str = "ROUND_ROBIN",
    *,
    panic: float | None = None,
    locality_weighted: bool = False,
    typed: Sequence[Any] = (),
) -> Any:
    """A Cluster with an `lb_policy` enum, or a typed `load_balancing_policy` list."""
    message = cluster_pb2.Cluster(name="svc", type=cluster_pb2.Cluster.EDS)
    message.lb_policy = cluster_pb2.Cluster.LbPolicy.Value(policy)
    if panic is not None:
        message.common_lb_config.healthy_panic_threshold.value = panic
    if locality_weighted:
        message.common_lb_config.locality_weighted_lb_config.SetInParent()
    for config in typed:
        message.load_balancing_policy.policies.add().typed_extension_config.typed_config.Pack(
            config
        )
    return message


def balancer(
    endpoints: Iterable[Ep],
    policy: str = "ROUND_ROBIN",
    *,
    seed: int = 1,
    client: str = "envoy",
    **cluster_options: Any,
) -> Balancer:
    """A balancer over `endpoints` with a seeded RNG."""
    return build_balancer(
        cluster(policy, **cluster_options),
        cla(endpoints),
        client=client,  # type: ignore[arg-type]
        rng=random.Random(seed),
    )


def counts(lb: Balancer, requests: int) -> Counter[str]:
    """How many of `requests` picks each `ip:port` receives (None counted as "None")."""
    return Counter(str(lb.choose()) for _ in range(requests))
