"""Builders of model objects for tests: endpoints, services, a world of every policy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xdscp.model import (
    BalancingPolicy,
    ClientSideWrr,
    Endpoint,
    HashOn,
    LbPolicy,
    Locality,
    Service,
)


def endpoints(*weights: int, port: int = 80) -> tuple[Endpoint, ...]:
    """One endpoint per weight: 10.0.0.1, 10.0.0.2, ... on `port` (nothing listens there)."""
    return tuple(Endpoint(f"10.0.0.{i}", port, weight=w) for i, w in enumerate(weights, 1))


def local_endpoints(ports: Iterable[int], weights: Iterable[int] = ()) -> tuple[Endpoint, ...]:
    """One endpoint on 127.0.0.1 per port (a running backend's), weighted by `weights` when
    given (then as many as there are weights), else weight 1 each."""
    ports = tuple(ports)
    weights = tuple(weights) or (1,) * len(ports)
    return tuple(Endpoint("127.0.0.1", p, weight=w) for p, w in zip(ports, weights, strict=False))


def service(endpoints: Iterable[Endpoint] = (), name: str = "web", **policy: Any) -> Service:
    """The service `name` over `endpoints` with `BalancingPolicy(**policy)` (its fields as
    the model takes them: `lb="ring_hash"`, `outlier_detection={...}`...)."""
    return Service(name, tuple(endpoints), BalancingPolicy(**policy))


CSWRR = ClientSideWrr(
    blackout_period=1.0,
    weight_update_period=0.25,
    metric_names_for_computing_utilization=("named_metrics.cost",),
    enable_oob_load_report=True,
    oob_reporting_period=2.0,
)


def policy_world() -> dict[str, Service]:
    """One service per load-balancing policy (named after it), all on the same three
    endpoints (two localities, a priority-1 one): the golden translation's input."""
    eps = (
        Endpoint("10.0.0.1", 8080, weight=1, locality=Locality("eu", "a")),
        Endpoint("10.0.0.2", 8080, weight=2, locality=Locality("eu", "b")),
        Endpoint("10.0.0.3", 8080, weight=7, priority=1),
    )
    policies = {
        "rr": BalancingPolicy(),
        "wrr": BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN),
        "random": BalancingPolicy(lb=LbPolicy.RANDOM),
        "wrandom": BalancingPolicy(lb=LbPolicy.WEIGHTED_RANDOM),
        "lr": BalancingPolicy(lb=LbPolicy.LEAST_REQUEST, choice_count=3),
        "ring": BalancingPolicy(lb=LbPolicy.RING_HASH, hash_on=(HashOn.parse("header:x-user"),)),
        "maglev": BalancingPolicy(lb=LbPolicy.MAGLEV, hash_on=(HashOn.parse("cookie:sid"),)),
        "srcip": BalancingPolicy(lb=LbPolicy.SOURCE_IP_HASH),
        "cswrr": BalancingPolicy(
            lb=LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN, client_side_wrr=CSWRR
        ),
    }
    return {name: Service(name, eps, policy) for name, policy in policies.items()}
