"""Balancing policies → Envoy's typed `load_balancing_policy` entries and hash policies.

| xdscp policy           | Envoy                                   | endpoint weights sent |
|------------------------|-----------------------------------------|-----------------------|
| round_robin            | round_robin                             | no (plain rotation)   |
| weighted_round_robin   | round_robin (EDF)                       | yes                   |
| random                 | random (ignores weights)                | yes                   |
| weighted_random        | maglev, no hash policy (random hash)    | yes                   |
| least_request          | least_request (choice_count, bias)      | yes                   |
| ring_hash              | ring_hash (+ hash policies)             | yes                   |
| maglev                 | maglev (+ hash policies)                | yes                   |
| source_ip_hash         | maglev, hash on the source IP           | yes                   |
| client_side_weighted_round_robin | the same (`client_side_wrr`, slow start) | no (reports)   |

Hash policies travel in CDS (`consistent_hashing_lb_config.hash_policy` of the typed config),
so they apply whatever listener and route a request comes through.
"""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3 import (
    client_side_weighted_round_robin_pb2 as cswrr_pb2,
)
from envoy.extensions.load_balancing_policies.common.v3 import common_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2

from xdscp.model import BalancingPolicy, ClientSideWrr, HashFunction, HashInput, HashOn, LbPolicy
from xdscp.translate.resilience import duration, slow_start_config

_PREFIX = "envoy.load_balancing_policies."
_HashPolicy = route_components_pb2.RouteAction.HashPolicy
BIAS_RUNTIME_KEY = "xdscp.least_request.active_request_bias"


def sends_weights(policy: BalancingPolicy) -> bool:
    """False for plain round robin (every endpoint then weighs 1: equal shares) and for
    client-side WRR (the clients weigh endpoints by their load reports alone)."""
    return policy.lb not in {LbPolicy.ROUND_ROBIN, LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN}


def hash_policy(hash_on: HashOn) -> Any:
    """One route `HashPolicy` for one hash input."""
    match hash_on.source:
        case HashInput.HEADER:
            hp = _HashPolicy(header=_HashPolicy.Header(header_name=hash_on.name))
        case HashInput.COOKIE:
            hp = _HashPolicy(cookie=_HashPolicy.Cookie(name=hash_on.name))
        case HashInput.QUERY_PARAMETER:
            hp = _HashPolicy(query_parameter=_HashPolicy.QueryParameter(name=hash_on.name))
        case HashInput.SOURCE_IP:
            hp = _HashPolicy(connection_properties=_HashPolicy.ConnectionProperties(source_ip=True))
    hp.terminal = hash_on.terminal
    return hp


def _locality(policy: BalancingPolicy) -> Any:
    config = common_pb2.LocalityLbConfig()
    if policy.locality_weighted:
        config.locality_weighted_lb_config.SetInParent()
    return config


def _ring_hash(policy: BalancingPolicy) -> Any:
    ring = ring_hash_pb2.RingHash(
        hash_function=(
            ring_hash_pb2.RingHash.MURMUR_HASH_2
            if policy.hash_function is HashFunction.MURMUR_HASH_2
            else ring_hash_pb2.RingHash.XX_HASH
        )
    )
    ring.minimum_ring_size.value = policy.min_ring_size
    ring.maximum_ring_size.value = policy.max_ring_size
    return _hashing(ring, policy)


def _bounded_load(config: Any, policy: BalancingPolicy) -> None:
    """`hash_balance_factor`: no host takes more than factor/100 x the average load."""
    if policy.hash_balance_factor is not None:
        config.hash_balance_factor.value = policy.hash_balance_factor


def maglev_config(policy: BalancingPolicy) -> Any:
    """The typed Maglev config for `policy` (table size, hash inputs, locality weighting)."""
    maglev = maglev_pb2.Maglev()
    maglev.table_size.value = policy.maglev_table_size
    return _hashing(maglev, policy)


def _hashing(config: Any, policy: BalancingPolicy) -> Any:
    """A RingHash or Maglev `config` with the policy's hash inputs, bounded load and locality
    weighting."""
    config.consistent_hashing_lb_config.hash_policy.extend(hash_policy(h) for h in policy.hash_on)
    _bounded_load(config.consistent_hashing_lb_config, policy)
    if policy.locality_weighted:
        config.locality_weighted_lb_config.SetInParent()
    return config


def _least_request(policy: BalancingPolicy) -> Any:
    config = least_request_pb2.LeastRequest(locality_lb_config=_locality(policy))
    if policy.choice_count != 2:
        config.choice_count.value = policy.choice_count
    if policy.active_request_bias != 1.0:
        # Only when asked: an explicit bias makes Envoy use its weighted (EDF) path.
        config.active_request_bias.default_value = policy.active_request_bias
        config.active_request_bias.runtime_key = BIAS_RUNTIME_KEY
    if policy.slow_start is not None:
        config.slow_start_config.CopyFrom(slow_start_config(policy.slow_start))
    return config


def _round_robin(policy: BalancingPolicy) -> Any:
    config = round_robin_pb2.RoundRobin(locality_lb_config=_locality(policy))
    if policy.slow_start is not None:
        config.slow_start_config.CopyFrom(slow_start_config(policy.slow_start))
    return config


def client_side_wrr_config(settings: ClientSideWrr) -> Any:
    """The typed `ClientSideWeightedRoundRobin` of `settings`, every field explicit (the same
    message for Envoy and gRPC; gRPC ignores `metric_names_for_computing_utilization`)."""
    config = cswrr_pb2.ClientSideWeightedRoundRobin()
    config.enable_oob_load_report.value = settings.enable_oob_load_report
    config.oob_reporting_period.CopyFrom(duration(settings.oob_reporting_period))
    config.blackout_period.CopyFrom(duration(settings.blackout_period))
    config.weight_expiration_period.CopyFrom(duration(settings.weight_expiration_period))
    config.weight_update_period.CopyFrom(duration(settings.weight_update_period))
    config.error_utilization_penalty.value = settings.error_utilization_penalty
    config.metric_names_for_computing_utilization.extend(
        settings.metric_names_for_computing_utilization
    )
    return config


def _client_side_wrr(policy: BalancingPolicy) -> Any:
    config = client_side_wrr_config(policy.client_side_wrr or ClientSideWrr())
    if policy.slow_start is not None:
        config.slow_start_config.CopyFrom(slow_start_config(policy.slow_start))
    return config


def envoy_policy(policy: BalancingPolicy) -> tuple[str, Any]:
    """The typed policy (extension name, message) Envoy runs for `policy`."""
    match policy.lb:
        case LbPolicy.ROUND_ROBIN | LbPolicy.WEIGHTED_ROUND_ROBIN:
            return "round_robin", _round_robin(policy)
        case LbPolicy.RANDOM:
            return "random", random_pb2.Random(locality_lb_config=_locality(policy))
        case LbPolicy.LEAST_REQUEST:
            return "least_request", _least_request(policy)
        case LbPolicy.RING_HASH:
            return "ring_hash", _ring_hash(policy)
        case LbPolicy.MAGLEV | LbPolicy.SOURCE_IP_HASH | LbPolicy.WEIGHTED_RANDOM:
            return "maglev", maglev_config(policy)
        case LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN:
            return "client_side_weighted_round_robin", _client_side_wrr(policy)


def set_policies(cluster: Any, entries: list[tuple[str, Any]]) -> None:
    """Write `entries` into `cluster.load_balancing_policy`, first supported entry wins."""
    for name, message in entries:
        entry = cluster.load_balancing_policy.policies.add()
        entry.typed_extension_config.name = _PREFIX + name
        entry.typed_extension_config.typed_config.Pack(message, deterministic=True)
