"""Builders of model objects for tests."""

from __future__ import annotations

from xdscp.model import BalancingPolicy, Endpoint, HashOn, LbPolicy, Locality, Service


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
    }
    return {name: Service(name, eps, policy) for name, policy in policies.items()}
