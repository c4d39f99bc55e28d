"""The reference balancer: Envoy's and proxyless gRPC's load-balancing algorithms, reproduced.

Give `build_balancer` the Cluster and ClusterLoadAssignment a client receives; the balancer's
`choose()` returns the host that client would pick (`str(host)` is `ip:port`), so tests and
`xdscp simulate` can predict how traffic spreads. Configurations the client would reject raise
`xdscp.errors.BalancerError` with the client's reason.

`build_balancer(..., ejected=..., ages=...)` adds what changes a pick besides the resources:
hosts outlier detection ejected (unhealthy to Envoy, panic when too few are left; skipped by
gRPC) and each host's seconds since it joined, for the cluster's slow start (Envoy's ramp,
`slow_start.py`). A ring hash / Maglev cluster's `hash_balance_factor` bounds each host's
active requests (Envoy's bounded-load probe, `bounded.py`). `expected_shares` computes the
long-run share of each host from a balancer's state. `route_split` (`routing.py`) predicts
which of a service's routes a request takes, its split over clusters and each endpoint's share.

Not reproduced (the pick ignores them): zone-aware routing (it needs the proxy's local
cluster), retry host predicates, ORCA load reports (client-side weighted round robin runs
with equal weights, as before any report; `load_aware` models the weights ORCA reports give,
and where the loop between weights and reports converges), and peeking / preconnect. One
balancer is one Envoy worker: exact sequences differ per worker seed.
"""

from xdscp.balancer.base import Balancer
from xdscp.balancer.build import build_balancer
from xdscp.balancer.hosts import Host
from xdscp.balancer.policy import Kind, LbSettings
from xdscp.balancer.routing import RouteSplit, cluster_shares, first_match, route_split
from xdscp.balancer.shares import expected_shares
from xdscp.balancer.simulation import (
    Conditions,
    HotKeyResult,
    RequestRoute,
    Resources,
    SimulationResult,
    remap_fractions,
    route_request,
    sequential_picks,
    simulate,
    simulate_hot_key,
)
from xdscp.errors import BalancerError

__all__ = [
    "Balancer",
    "BalancerError",
    "Conditions",
    "Host",
    "HotKeyResult",
    "Kind",
    "LbSettings",
    "RequestRoute",
    "Resources",
    "RouteSplit",
    "SimulationResult",
    "build_balancer",
    "cluster_shares",
    "expected_shares",
    "first_match",
    "remap_fractions",
    "route_request",
    "route_split",
    "sequential_picks",
    "simulate",
    "simulate_hot_key",
]
