"""Envoy's priority spill sent to gRPC clients as weighted localities of one priority."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdscp.balancer import build_balancer, expected_shares
from xdscp.model import BalancingPolicy, Endpoint, Health, LbPolicy, Locality, Service
from xdscp.translate import cluster_for, load_assignment_for
from xdscp.translate.failover import envoy_loads, integer_weights
from xdscp.translate.grpc import grpc_cluster, grpc_load_assignment


def _issue_service(lb: LbPolicy = LbPolicy.ROUND_ROBIN) -> Service:
    """The issue's case: 3 priority-0 endpoints, 2 of them unhealthy; 2 in priority 1."""
    return Service(
        "svc",
        (
            Endpoint("10.0.0.1", 80, health=Health.UNHEALTHY),
            Endpoint("10.0.0.2", 80, health=Health.UNHEALTHY),
            Endpoint("10.0.0.3", 80),
            Endpoint("10.0.1.1", 80, priority=1),
            Endpoint("10.0.1.2", 80, priority=1),
        ),
        BalancingPolicy(lb=lb),
    )


def _shares(service: Service, client: str) -> dict[str, float]:
    if client == "grpc":
        resources = grpc_cluster(service), grpc_load_assignment(service)
    else:
        resources = cluster_for(service), load_assignment_for(service)
    lb = build_balancer(*resources, client=client, rng=random.Random(0))  # type: ignore[arg-type]
    return expected_shares(lb)


def test_issue_case_spills_46_54_as_one_weighted_priority() -> None:
    """1 of 3 healthy at priority 0: Envoy keeps 140*1//3 = 46 %; gRPC gets the same split."""
    cla = grpc_load_assignment(_issue_service())
    assert {lle.priority for lle in cla.endpoints} == {0}
    weights = [(len(lle.lb_endpoints), lle.load_balancing_weight.value) for lle in cla.endpoints]
    assert weights == [(1, 23), (2, 27)]  # 46 : 54, the locality's 2 endpoints rotate
    assert _shares(_issue_service(), "grpc") == pytest.approx(_shares(_issue_service(), "envoy"))
    assert _shares(_issue_service(), "grpc")["10.0.0.3:80"] == pytest.approx(0.46)


def test_no_spill_keeps_priorities_for_connectivity_failover() -> None:
    """All healthy: priority 0 takes everything, and priority 1 stays gRPC's fallback."""
    service = Service(
        "svc",
        (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80), Endpoint("10.0.1.1", 80, priority=1)),
    )
    cla = grpc_load_assignment(service)
    assert [(lle.priority, lle.load_balancing_weight.value) for lle in cla.endpoints] == [
        (0, 2),
        (1, 1),
    ]


def _one_priority(*health: Health, policy: BalancingPolicy | None = None) -> Service:
    """Endpoints 10.0.0.1, 10.0.0.2, ... of one priority, with the given health each."""
    endpoints = tuple(Endpoint(f"10.0.0.{i + 1}", 80, health=h) for i, h in enumerate(health))
    return Service("svc", endpoints, policy or BalancingPolicy())


def test_panic_sends_every_host_of_the_priority() -> None:
    """Nothing healthy enough anywhere: Envoy balances over all hosts (panic), so does gRPC."""
    service = _one_priority(Health.UNHEALTHY, Health.UNHEALTHY, Health.HEALTHY)
    cla = grpc_load_assignment(service)
    assert sum(len(lle.lb_endpoints) for lle in cla.endpoints) == 3
    assert _shares(service, "grpc") == pytest.approx(_shares(service, "envoy"))
    assert _shares(service, "grpc")["10.0.0.1:80"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("threshold", "panic"), [(0.0, False), (33.9, False), (34.0, True)])
def test_panic_threshold_is_truncated_like_envoys(threshold: float, panic: bool) -> None:
    """1 of 3 healthy (33.3 %): threshold 0 turns panic off, 33.9 is 33 to Envoy (truncated:
    no panic, the healthy host takes all), 34 panics (every host a third)."""
    policy = BalancingPolicy(panic_threshold=threshold)
    service = _one_priority(Health.UNHEALTHY, Health.HEALTHY, Health.UNHEALTHY, policy=policy)
    grpc = _shares(service, "grpc")
    assert grpc == pytest.approx(_shares(service, "envoy"))
    assert grpc["10.0.0.2:80"] == pytest.approx(1 / 3 if panic else 1.0)


def test_degraded_load_goes_to_degraded_hosts() -> None:
    service = _one_priority(Health.DEGRADED, Health.DEGRADED, Health.HEALTHY)
    envoy = _shares(service, "envoy")
    # healthy 140*1//3 = 46 %, degraded min(100, 140*2//3) = 93 -> the remaining 54 %
    assert envoy == pytest.approx({"10.0.0.3:80": 0.46, "10.0.0.1:80": 0.27, "10.0.0.2:80": 0.27})
    assert _shares(service, "grpc") == pytest.approx(envoy)


def test_loads_match_envoys_arithmetic() -> None:
    """The loads the translation computes are the reference balancer's."""
    levels = [
        [Endpoint("10.0.0.1", 80, health=Health.UNHEALTHY), Endpoint("10.0.0.2", 80)],
        [],
        [Endpoint("10.0.2.1", 80, priority=2)],
    ]
    loads = envoy_loads(levels, 140, 50.0)
    assert (loads.healthy, loads.panic) == ((70, 0, 30), (False, False, False))


def test_integer_weights_exact_and_rounded() -> None:
    assert integer_weights([Fraction(46, 100), Fraction(27, 100), Fraction(27, 100)]) == [
        46,
        27,
        27,
    ]
    rounded = integer_weights([Fraction(1, 3), Fraction(2, 3)], cap=2)
    assert all(w >= 1 for w in rounded)
    assert integer_weights([Fraction(1, 10**9), Fraction(1)], cap=1000) == [1, 1000 // 2]


_HEALTH = st.sampled_from(
    [Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY, Health.DRAINING, Health.DEGRADED]
)
_POLICIES = [
    LbPolicy.ROUND_ROBIN,
    LbPolicy.WEIGHTED_ROUND_ROBIN,
    LbPolicy.RANDOM,
    LbPolicy.WEIGHTED_RANDOM,
    LbPolicy.RING_HASH,
    LbPolicy.MAGLEV,
]


@st.composite
def services(draw: st.DrawFn) -> Service:
    """1-3 priorities of 1-4 endpoints in up to 2 zones, any health, weights 1-5."""
    endpoints = [
        Endpoint(
            f"10.0.{priority}.{i + 1}",
            80,
            weight=draw(st.integers(1, 5)),
            locality=Locality(zone=draw(st.sampled_from(["a", "b"]))),
            priority=priority,
            health=draw(_HEALTH),
        )
        for priority in range(draw(st.integers(1, 3)))
        for i in range(draw(st.integers(1, 4)))
    ]
    policy = BalancingPolicy(
        lb=draw(st.sampled_from(_POLICIES)),
        overprovisioning_factor=draw(st.sampled_from([100, 140, 200])),
        panic_threshold=draw(st.sampled_from([0.0, 33.9, 50.0, 66.5, 80.0])),
    )
    return Service("svc", tuple(endpoints), policy)


def _normalized(shares: dict[str, float]) -> dict[str, float]:
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services())
def test_grpc_shares_equal_envoy_shares(service: Service) -> None:
    """Property: the shares a gRPC client computes from its CLA are Envoy's, within integer
    rounding (Envoy's share of requests it cannot serve aside: gRPC spreads them)."""
    envoy = _shares(service, "envoy")
    grpc = _shares(service, "grpc")
    if not envoy:
        assert not grpc
        return
    assert set(grpc) == set(envoy)
    assert _normalized(grpc) == pytest.approx(_normalized(envoy), abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(services())
def test_grpc_cla_has_unique_localities_and_addresses(service: Service) -> None:
    """grpc-go NACKs a locality repeated within a priority and an address listed twice."""
    cla = grpc_load_assignment(service)
    localities = [(lle.priority, str(lle.locality)) for lle in cla.endpoints]
    addresses = [
        e.endpoint.address.socket_address.address for lle in cla.endpoints for e in lle.lb_endpoints
    ]
    assert len(set(localities)) == len(localities)
    assert len(set(addresses)) == len(addresses)
    assert all(0 < lle.load_balancing_weight.value <= 0xFFFFFFFF for lle in cla.endpoints)
