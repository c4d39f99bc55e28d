"""The reference balancer: Envoy's and proxyless gRPC's load-balancing algorithms, reproduced.

Give `build_balancer` the Cluster and ClusterLoadAssignment a client receives; the balancer's
`choose()` returns the host that client would pick (`str(host)` is `ip:port`), so tests and
`xdscp simulate` can predict how traffic spreads. Configurations the client would reject raise
`xdscp.errors.BalancerError` with the client's reason.

Not reproduced (the pick ignores them): slow start, hash_balance_factor (bounded-load hashing),
zone-aware routing (it needs the proxy's local cluster), retry host predicates, ORCA load
reports (client-side weighted round robin runs with equal weights, as before any report), and
peeking / preconnect. One balancer is one Envoy worker: exact sequences differ per worker seed.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from xdscp.balancer.base import Balancer
from xdscp.balancer.consistent import HashBalancer
from xdscp.balancer.envoy_lb import ENVOY_BALANCERS
from xdscp.balancer.grpc_lb import GrpcBalancer
from xdscp.balancer.hosts import Host, host_sets, hosts_from_cla, overprovisioning_factor
from xdscp.balancer.policy import Kind, LbSettings, envoy_policy, grpc_policy
from xdscp.errors import BalancerError

__all__ = ["Balancer", "BalancerError", "Host", "Kind", "LbSettings", "build_balancer"]

Client = Literal["envoy", "grpc"]


def build_balancer(
    cluster: Any, cla: Any, *, client: Client = "envoy", rng: random.Random | None = None
) -> Balancer:
    """The balancer `client` ("envoy" or "grpc") runs for this Cluster and CLA.

    `rng` drives every random choice (seeds, P2C samples, random picks) for reproducible runs.
    """
    rng = rng if rng is not None else random.Random()
    if client == "grpc":
        return GrpcBalancer(cla, grpc_policy(cluster), rng)
    if client != "envoy":
        raise BalancerError(f"client must be 'envoy' or 'grpc', got {client!r}")
    settings = envoy_policy(cluster)
    sets = host_sets(hosts_from_cla(cla))
    overprovisioning = overprovisioning_factor(cla)
    weighted = bool(cla.policy.weighted_priority_health)
    if settings.kind in (Kind.RING_HASH, Kind.MAGLEV):
        return HashBalancer(
            sets,
            settings,
            rng,
            overprovisioning=overprovisioning,
            weighted_priority_health=weighted,
        )
    return ENVOY_BALANCERS[settings.kind](
        sets, settings, rng, overprovisioning=overprovisioning, weighted_priority_health=weighted
    )
