"""`build_balancer`: the balancer a client builds from the Cluster and CLA it receives."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Any

from xdscp.balancer.base import Balancer, PriorityBalancer
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.envoy_lb import ENVOY_BALANCERS
from xdscp.balancer.grpc_lb import GrpcBalancer
from xdscp.balancer.hosts import (
    apply_conditions,
    host_sets,
    hosts_from_cla,
    overprovisioning_factor,
)
from xdscp.balancer.policy import Kind, envoy_policy, grpc_policy
from xdscp.errors import BalancerError
from xdscp.model import ClientKind


def build_balancer(
    cluster: Any,
    cla: Any,
    *,
    client: ClientKind = ClientKind.ENVOY,
    rng: random.Random | None = None,
    ejected: Collection[str] = (),
    ages: Mapping[str, float] | None = None,
) -> Balancer:
    """The balancer `client` ("envoy" or "grpc") runs for this Cluster and CLA.

    `rng` drives every random choice (seeds, P2C samples, random picks) for reproducible runs.
    `ejected` names hosts (`ip:port`) outlier detection has ejected: Envoy counts them
    unhealthy (panic when too few are left), gRPC skips them. `ages` gives hosts' seconds since
    they joined, for the cluster's slow start (hosts not named joined long ago).
    """
    rng = rng if rng is not None else random.Random()
    try:
        kind = ClientKind(client)
    except ValueError:
        raise BalancerError(f"client must be 'envoy' or 'grpc', got {client!r}") from None
    if kind is ClientKind.GRPC:
        return GrpcBalancer(cla, grpc_policy(cluster), rng, ejected=frozenset(ejected))
    settings = envoy_policy(cluster)
    hosts = hosts_from_cla(cla)
    apply_conditions(hosts, ejected=ejected, ages=ages)
    sets = host_sets(hosts)
    overprovisioning = overprovisioning_factor(cla)
    weighted = bool(cla.policy.weighted_priority_health)
    hashing = settings.kind in (Kind.RING_HASH, Kind.MAGLEV)
    balancer: type[PriorityBalancer] = HashBalancer if hashing else ENVOY_BALANCERS[settings.kind]
    return balancer(
        sets, settings, rng, overprovisioning=overprovisioning, weighted_priority_health=weighted
    )
