"""Which balancing policy a Cluster selects, and its settings, as Envoy or gRPC reads them.

`envoy_policy(cluster)` and `grpc_policy(cluster)` return an `LbSettings`, or raise
`BalancerError` with the reason the client would NACK the cluster.
`load_balancing_policy.policies` wins over `lb_policy` and is walked in order: the first entry
the client supports is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3 import (
    client_side_weighted_round_robin_pb2 as cswrr_pb2,
)
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.pick_first.v3 import pick_first_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2

from xdscp.balancer.slow_start import SlowStart
from xdscp.errors import BalancerError, ValidationError
from xdscp.model import (
    DEFAULT_MAGLEV_TABLE,
    DEFAULT_PANIC_THRESHOLD,
    ENVOY_MAX_RING,
    MAGLEV_MAX_TABLE,
    HashFunction,
    is_prime,
    panic_threshold_percent,
)

GRPC_RING_CAP = 4096  # grpc's local cap on ring sizes (channel arg default)


class Kind(StrEnum):
    """The balancing algorithms the reference balancer reproduces."""

    ROUND_ROBIN = "round_robin"
    LEAST_REQUEST = "least_request"
    RANDOM = "random"
    RING_HASH = "ring_hash"
    MAGLEV = "maglev"
    CLIENT_SIDE_WRR = "client_side_weighted_round_robin"
    PICK_FIRST = "pick_first"


@dataclass(frozen=True, slots=True)
class LbSettings:
    """One cluster's balancing policy and every setting the algorithms read."""

    kind: Kind
    locality_weighted: bool = False
    panic_threshold: int = 50
    choice_count: int = 2
    active_request_bias: float | None = None  # None: not configured (Envoy uses 1.0)
    full_scan: bool = False
    min_ring_size: int = 1024
    max_ring_size: int = ENVOY_MAX_RING
    hash_function: HashFunction = HashFunction.XX_HASH
    table_size: int = DEFAULT_MAGLEV_TABLE
    use_hostname_for_hashing: bool = False
    hash_policies: tuple[Any, ...] = ()
    wrr_locality: bool = False
    slow_start: SlowStart | None = None
    hash_balance_factor: int | None = None


_PREFIX = "type.googleapis.com/"
_TYPED: dict[str, tuple[Kind | None, Any]] = {
    round_robin_pb2.RoundRobin.DESCRIPTOR.full_name: (Kind.ROUND_ROBIN, round_robin_pb2.RoundRobin),
    least_request_pb2.LeastRequest.DESCRIPTOR.full_name: (
        Kind.LEAST_REQUEST,
        least_request_pb2.LeastRequest,
    ),
    random_pb2.Random.DESCRIPTOR.full_name: (Kind.RANDOM, random_pb2.Random),
    ring_hash_pb2.RingHash.DESCRIPTOR.full_name: (Kind.RING_HASH, ring_hash_pb2.RingHash),
    maglev_pb2.Maglev.DESCRIPTOR.full_name: (Kind.MAGLEV, maglev_pb2.Maglev),
    cswrr_pb2.ClientSideWeightedRoundRobin.DESCRIPTOR.full_name: (
        Kind.CLIENT_SIDE_WRR,
        cswrr_pb2.ClientSideWeightedRoundRobin,
    ),
    pick_first_pb2.PickFirst.DESCRIPTOR.full_name: (Kind.PICK_FIRST, pick_first_pb2.PickFirst),
    wrr_locality_pb2.WrrLocality.DESCRIPTOR.full_name: (None, wrr_locality_pb2.WrrLocality),
}
ENVOY_KINDS = frozenset(
    {
        Kind.ROUND_ROBIN,
        Kind.LEAST_REQUEST,
        Kind.RANDOM,
        Kind.RING_HASH,
        Kind.MAGLEV,
        Kind.CLIENT_SIDE_WRR,
    }
)
GRPC_KINDS = frozenset({Kind.ROUND_ROBIN, Kind.RING_HASH, Kind.CLIENT_SIDE_WRR, Kind.PICK_FIRST})


def _panic_threshold(cluster: Any) -> int:
    common = cluster.common_lb_config
    if cluster.HasField("common_lb_config") and common.HasField("healthy_panic_threshold"):
        return panic_threshold_percent(float(common.healthy_panic_threshold.value))
    return DEFAULT_PANIC_THRESHOLD


def _wrapped(message: Any, name: str, default: int) -> int:
    return int(getattr(message, name).value) if message.HasField(name) else default


def _check_ring(min_ring: int, max_ring: int, where: str, *, typed: bool = False) -> None:
    # Typed configs travel in an Any whose range rules Envoy 1.40 does not apply.
    if max_ring > ENVOY_MAX_RING and not typed:
        raise BalancerError(
            f"{where}.maximum_ring_size: value must be less than or equal to {ENVOY_MAX_RING}"
        )
    if min_ring > max_ring:
        raise BalancerError(
            f"ring hash: minimum_ring_size ({min_ring}) > maximum_ring_size ({max_ring})"
        )


def _check_table(size: int, *, typed: bool = False) -> None:
    # Typed configs travel in an Any whose range rules Envoy 1.40 does not apply.
    if size > MAGLEV_MAX_TABLE and not typed:
        raise BalancerError("maglev table_size: value must be less than or equal to 5000011")
    if not is_prime(size):
        raise BalancerError(f"The table size of maglev must be prime number, got {size}")


def _bias(runtime_double: Any) -> float:
    bias = float(runtime_double.default_value)
    return 1.0 if bias < 0.0 or math.isnan(bias) else bias


def slow_start_config(config: Any) -> SlowStart | None:
    """A `slow_start_config` message (typed or enum form) as `SlowStart`; None when unset."""
    if not config.HasField("slow_start_window"):
        return None
    aggression = float(config.aggression.default_value) if config.HasField("aggression") else 1.0
    minimum = (
        float(config.min_weight_percent.value) if config.HasField("min_weight_percent") else 10.0
    )
    try:
        return SlowStart(config.slow_start_window.ToNanoseconds() / 1e9, aggression, minimum)
    except ValidationError as error:
        raise BalancerError(str(error)) from error


def _balance_factor(hashing: Any) -> int | None:
    return _wrapped(hashing, "hash_balance_factor", 0) or None


def envoy_policy(cluster: Any) -> LbSettings:
    """The policy Envoy runs for `cluster`; BalancerError where Envoy would NACK it."""
    base = LbSettings(
        Kind.ROUND_ROBIN,
        panic_threshold=_panic_threshold(cluster),
        locality_weighted=cluster.common_lb_config.HasField("locality_weighted_lb_config"),
        use_hostname_for_hashing=bool(
            cluster.common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing
        ),
    )
    if cluster.HasField("load_balancing_policy"):
        return _typed_list(cluster.load_balancing_policy, base, ENVOY_KINDS, grpc=False)
    return _enum_settings(cluster, base)


def _enum_settings(cluster: Any, base: LbSettings) -> LbSettings:
    """Settings for the `lb_policy` enum and its `*_lb_config` message."""
    policy = cluster.lb_policy
    if policy == cluster_pb2.Cluster.LOAD_BALANCING_POLICY_CONFIG:
        raise BalancerError(
            "cluster: LB policy LOAD_BALANCING_POLICY_CONFIG requires load_balancing_policy"
        )
    base = replace(
        base,
        hash_balance_factor=_balance_factor(cluster.common_lb_config.consistent_hashing_lb_config),
    )
    if policy == cluster_pb2.Cluster.ROUND_ROBIN:
        return replace(
            base, slow_start=slow_start_config(cluster.round_robin_lb_config.slow_start_config)
        )
    if policy == cluster_pb2.Cluster.RANDOM:
        return replace(base, kind=Kind.RANDOM)
    if policy == cluster_pb2.Cluster.LEAST_REQUEST:
        config = cluster.least_request_lb_config
        return _least_request(
            config, replace(base, slow_start=slow_start_config(config.slow_start_config))
        )
    if policy == cluster_pb2.Cluster.RING_HASH:
        return _enum_ring(cluster.ring_hash_lb_config, base)
    if policy == cluster_pb2.Cluster.MAGLEV:
        size = _wrapped(cluster.maglev_lb_config, "table_size", DEFAULT_MAGLEV_TABLE)
        _check_table(size)
        return replace(base, kind=Kind.MAGLEV, table_size=size)
    name = cluster_pb2.Cluster.LbPolicy.Name(policy)
    raise BalancerError(f"cluster: LB policy {name} is not supported by the reference balancer")


def _least_request(message: Any, settings: LbSettings) -> LbSettings:
    """`choice_count` and `active_request_bias` of a least-request config (enum or typed)."""
    bias = _bias(message.active_request_bias) if message.HasField("active_request_bias") else None
    return replace(
        settings,
        kind=Kind.LEAST_REQUEST,
        choice_count=_wrapped(message, "choice_count", 2),
        active_request_bias=bias,
    )


def _enum_ring(ring: Any, base: LbSettings) -> LbSettings:
    """`ring_hash_lb_config`: ring sizes (checked as Envoy checks them) and hash function."""
    min_ring = _wrapped(ring, "minimum_ring_size", 1024)
    max_ring = _wrapped(ring, "maximum_ring_size", ENVOY_MAX_RING)
    _check_ring(min_ring, max_ring, "ring_hash_lb_config")
    function = HashFunction.MURMUR_HASH_2 if ring.hash_function == 1 else HashFunction.XX_HASH
    return replace(
        base,
        kind=Kind.RING_HASH,
        min_ring_size=min_ring,
        max_ring_size=max_ring,
        hash_function=function,
    )


def _typed_list(
    lb_policy: Any, base: LbSettings, kinds: frozenset[Kind], *, grpc: bool
) -> LbSettings:
    for index, policy in enumerate(lb_policy.policies):
        type_url = policy.typed_extension_config.typed_config.type_url
        entry = _TYPED.get(type_url.removeprefix(_PREFIX))
        if entry is None:
            continue
        kind, message_type = entry
        message = message_type()
        policy.typed_extension_config.typed_config.Unpack(message)
        if kind is None:  # wrr_locality: walk the child list, locality weighted
            child = replace(base, locality_weighted=True, wrr_locality=True)
            return _typed_list(message.endpoint_picking_policy, child, kinds, grpc=grpc)
        if kind in kinds:
            return _typed_settings(kind, message, base, index, grpc=grpc)
    if grpc:
        raise grpc_error("load_balancing_policy", "no supported load balancing policy config found")
    raise BalancerError(
        "cluster: didn't find a registered load balancer factory implementation for the "
        "load_balancing_policy list"
    )


def _locality_config(message: Any, base: LbSettings) -> bool:
    if base.wrr_locality:
        return True
    return bool(message.locality_lb_config.HasField("locality_weighted_lb_config"))


def _typed_settings(
    kind: Kind, message: Any, base: LbSettings, index: int, *, grpc: bool
) -> LbSettings:
    if kind is Kind.RANDOM:
        return replace(base, kind=kind, locality_weighted=_locality_config(message, base))
    if kind is Kind.ROUND_ROBIN:
        return replace(
            base,
            kind=kind,
            locality_weighted=_locality_config(message, base),
            slow_start=None if grpc else slow_start_config(message.slow_start_config),
        )
    if kind is Kind.LEAST_REQUEST:
        settings = replace(
            base,
            locality_weighted=_locality_config(message, base),
            full_scan=message.selection_method == 1 or message.enable_full_scan.value,
            slow_start=None if grpc else slow_start_config(message.slow_start_config),
        )
        return _least_request(message, settings)
    if kind in (Kind.CLIENT_SIDE_WRR, Kind.PICK_FIRST):
        return replace(base, kind=kind)
    return _typed_hashing(kind, message, base, index, grpc=grpc)


def _typed_hashing(
    kind: Kind, message: Any, base: LbSettings, index: int, *, grpc: bool
) -> LbSettings:
    """Typed ring hash or Maglev: hash policies, hostname hashing, locality weighting, the
    balance factor (Envoy only), then the table or ring sizes."""
    hashing = message.consistent_hashing_lb_config
    settings = replace(
        base,
        kind=kind,
        hash_policies=tuple(hashing.hash_policy),
        use_hostname_for_hashing=bool(hashing.use_hostname_for_hashing)
        or bool(getattr(message, "use_hostname_for_hashing", False)),
        locality_weighted=base.wrr_locality or message.HasField("locality_weighted_lb_config"),
        hash_balance_factor=None if grpc else _balance_factor(hashing),
    )
    if kind is Kind.MAGLEV:
        size = _wrapped(message, "table_size", DEFAULT_MAGLEV_TABLE)
        _check_table(size, typed=True)
        return replace(settings, table_size=size)
    return _typed_ring(message, settings, index, grpc=grpc)


def _typed_ring(message: Any, settings: LbSettings, index: int, *, grpc: bool) -> LbSettings:
    min_ring = _wrapped(message, "minimum_ring_size", 1024)
    max_ring = _wrapped(message, "maximum_ring_size", ENVOY_MAX_RING)
    murmur = message.hash_function == ring_hash_pb2.RingHash.MURMUR_HASH_2
    where = (
        f"load_balancing_policy.policies[{index}].typed_extension_config.typed_config"
        ".value[envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash]"
    )
    if grpc:
        _grpc_ring_checks(min_ring, max_ring, murmur, where)
    else:
        _check_ring(min_ring, max_ring, "ring_hash", typed=True)
    return replace(
        settings,
        min_ring_size=min_ring,
        max_ring_size=max_ring,
        hash_function=HashFunction.MURMUR_HASH_2 if murmur else HashFunction.XX_HASH,
    )


def grpc_error(field: str, error: str) -> BalancerError:
    """A BalancerError worded as grpc words a rejected Cluster."""
    return BalancerError(f"errors validating Cluster resource: [field:{field} error:{error}]")


def _grpc_ring_checks(min_ring: int, max_ring: int, murmur: bool, where: str) -> None:
    if murmur:
        raise grpc_error(f"{where}.hash_function", "invalid hash function")
    for name, value in (("minimum_ring_size", min_ring), ("maximum_ring_size", max_ring)):
        if not 1 <= value <= ENVOY_MAX_RING:
            raise grpc_error(f"{where}.{name}", "must be in the range of 1 to 8388608")
    if min_ring > max_ring:
        raise grpc_error(f"{where}.minimum_ring_size", "cannot be greater than maximum_ring_size")


def grpc_policy(cluster: Any) -> LbSettings:
    """The policy proxyless gRPC runs for `cluster`; BalancerError worded as its NACK."""
    base = LbSettings(Kind.ROUND_ROBIN, panic_threshold=0)
    if cluster.HasField("load_balancing_policy"):
        return _typed_list(cluster.load_balancing_policy, base, GRPC_KINDS, grpc=True)
    if cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN:
        return replace(base, locality_weighted=True, wrr_locality=True)
    if cluster.lb_policy != cluster_pb2.Cluster.RING_HASH:
        raise grpc_error("lb_policy", "LB policy is not supported")
    ring = cluster.ring_hash_lb_config
    min_ring = _wrapped(ring, "minimum_ring_size", 1024)
    max_ring = _wrapped(ring, "maximum_ring_size", ENVOY_MAX_RING)
    _grpc_ring_checks(min_ring, max_ring, ring.hash_function == 1, "ring_hash_lb_config")
    return replace(base, kind=Kind.RING_HASH, min_ring_size=min_ring, max_ring_size=max_ring)
