"""Parity of priorities, overprovisioning, panic and locality weights with a real Envoy.

Health comes from the CLA's `health_status` (no health checks run). Random-driven splits are
checked at 5 sigma (stats.py); hash-driven and EDF-driven ones pick for pick or within a
fixed slack.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.harness.parity import Backends, Case, EnvoyFactory, counts, hashed_picks, picks_from
from tests.harness.stats import assert_shares, reference, shares
from tests.integration.parity.protos import (
    DEGRADED,
    DRAINING,
    UNHEALTHY,
    Ep,
    Maglev,
    cla,
    enum_cluster,
    header_policy,
    typed_cluster,
)
from xdscp.balancer import sequential_picks

pytestmark = pytest.mark.envoy

REQUESTS = 2000
REFERENCE_PICKS = 40000


def _observe(envoy_for: EnvoyFactory, case: Case, requests: int = REQUESTS) -> Counter[str]:
    return counts(picks_from(envoy_for([case])[case.name], requests))


def _spill_endpoints(backends: Backends, p0_unhealthy: int, p1_unhealthy: int) -> list[Ep]:
    """Priority 0: b0..b3, the first `p0_unhealthy` unhealthy; priority 1: b4, b5."""
    ports = backends.ports
    p0 = [Ep(p, health=UNHEALTHY if i < p0_unhealthy else 0) for i, p in enumerate(ports[:4])]
    p1 = [
        Ep(p, priority=1, health=UNHEALTHY if i < p1_unhealthy else 0)
        for i, p in enumerate(ports[4:6])
    ]
    return p0 + p1


def _by_priority(observed: Counter[str], backends: Backends) -> dict[str, int]:
    p1 = {backends.names[p] for p in backends.ports[4:6]}
    return {
        "p0": sum(v for k, v in observed.items() if k not in p1),
        "p1": sum(v for k, v in observed.items() if k in p1),
    }


@pytest.mark.parametrize(
    ("overprovisioning", "p1_load"), [(None, 30), (100, 50), (200, 0)], ids=["140", "100", "200"]
)
def test_overprovisioning_spills_to_priority_1(
    envoy_for: EnvoyFactory, backends: Backends, overprovisioning: int | None, p1_load: int
) -> None:
    """Half of priority 0 unhealthy: priority 1 receives min(100, OF*2//4) complement —
    30 % at the default factor 140, 50 % at 100, none at 200 — as the reference's priority
    load says; unhealthy hosts get nothing; per-host shares match the reference (5 sigma)."""
    endpoints = _spill_endpoints(backends, p0_unhealthy=2, p1_unhealthy=0)
    case = Case(
        enum_cluster("spill", "ROUND_ROBIN"),
        cla("spill", endpoints, overprovisioning=overprovisioning),
    )
    ref = reference(case.cluster, case.cla)
    assert ref.load.healthy == (100 - p1_load, p1_load)  # type: ignore[attr-defined]
    predicted = shares(sequential_picks(ref, REFERENCE_PICKS, backends.name_of))
    observed = _observe(envoy_for, case)
    assert_shares(observed, predicted, REQUESTS, reference_picks=REFERENCE_PICKS)
    assert_shares(
        _by_priority(observed, backends),
        {"p0": 1 - p1_load / 100, "p1": p1_load / 100},
        REQUESTS,
        alternative={"p0": 0.5, "p1": 0.5} if p1_load != 50 else {"p0": 0.7, "p1": 0.3},
    )


@pytest.mark.parametrize(
    ("p0_unhealthy", "p1_unhealthy", "loads"),
    [(3, 0, (35, 65)), (3, 2, (67, 33))],
    ids=["p0-low-no-panic", "all-panic"],
)
def test_panic(
    envoy_for: EnvoyFactory,
    backends: Backends,
    p0_unhealthy: int,
    p1_unhealthy: int,
    loads: tuple[int, int],
) -> None:
    """1 of 4 priority-0 hosts healthy: with a healthy priority 1 the total is 100 % so there
    is no panic (35/65, unhealthy hosts idle); with priority 1 all unhealthy too, every
    priority is in panic: load by host count (67/33) over ALL hosts, unhealthy included."""
    endpoints = _spill_endpoints(backends, p0_unhealthy, p1_unhealthy)
    case = Case(enum_cluster("panic", "ROUND_ROBIN"), cla("panic", endpoints))
    ref = reference(case.cluster, case.cla)
    assert ref.load.healthy == loads  # type: ignore[attr-defined]
    predicted = shares(sequential_picks(ref, REFERENCE_PICKS, backends.name_of))
    observed = _observe(envoy_for, case)
    healthy_only = {backends.names[p]: 1 / 3 for p in backends.ports[3:6]}
    assert_shares(
        observed,
        predicted,
        REQUESTS,
        reference_picks=REFERENCE_PICKS,
        alternative=healthy_only if p1_unhealthy else None,
    )


def test_degraded_and_draining_hosts(envoy_for: EnvoyFactory, backends: Backends) -> None:
    """Priority 0 with 2 healthy, 2 DEGRADED and 1 DRAINING host: the draining host leaves the
    arithmetic (n = 4), healthy availability min(100, 140*2//4) = 70 %, the degraded hosts
    take the remaining 30 %, the draining host nothing — per host as the reference (5 sigma),
    and unlike a split treating degraded hosts as healthy."""
    ports = backends.ports
    health = (0, 0, DEGRADED, DEGRADED, DRAINING)
    endpoints = [Ep(p, health=h) for p, h in zip(ports[:5], health, strict=True)]
    case = Case(enum_cluster("deg", "ROUND_ROBIN"), cla("deg", endpoints))
    ref = reference(case.cluster, case.cla)
    assert (ref.load.healthy, ref.load.degraded) == ((70,), (30,))  # type: ignore[attr-defined]
    predicted = shares(sequential_picks(ref, REFERENCE_PICKS, backends.name_of))
    observed = _observe(envoy_for, case)
    flat = {backends.names[p]: 0.25 for p in ports[:4]}
    assert_shares(observed, predicted, REQUESTS, reference_picks=REFERENCE_PICKS, alternative=flat)


def test_single_priority_all_unhealthy_rotates_over_all(
    envoy_for: EnvoyFactory, backends: Backends
) -> None:
    """Every host unhealthy: panic balances over all of them, so round robin is the exact
    rotation of the CLA order, in Envoy as in the reference."""
    ports = backends.ports[:3]
    case = Case(
        enum_cluster("allbad", "ROUND_ROBIN"),
        cla("allbad", [Ep(p, health=UNHEALTHY) for p in ports]),
    )
    order = [backends.names[p] for p in ports]
    ref = reference(case.cluster, case.cla)
    envoy_picks = picks_from(envoy_for([case])[case.name], 300)
    for picks in ([backends.name_of(ref.choose()) for _ in range(300)], envoy_picks):
        start = order.index(picks[0])
        assert picks == [order[(start + i) % 3] for i in range(300)]


def test_priority_spill_with_hash_is_exact(envoy_for: EnvoyFactory, backends: Backends) -> None:
    """Maglev over two priorities, half of priority 0 unhealthy: the request hash chooses the
    priority (hash % 100 against the 70/30 load) and the host; every pick matches."""
    endpoints = _spill_endpoints(backends, p0_unhealthy=2, p1_unhealthy=0)
    case = Case(enum_cluster("hp", "MAGLEV"), cla("hp", endpoints), [header_policy("x-user")])
    ref = reference(case.cluster, case.cla)
    keys = [f"user-{i}" for i in range(400)]
    want = [
        backends.name_of(
            ref.choose(
                ref.request_hash(headers={"x-user": k}, route_policies=case.route_hash_policies)
            )
        )
        for k in keys
    ]
    got = hashed_picks(envoy_for([case])[case.name], keys)
    assert got == want
    assert _by_priority(counts(got), backends)["p1"] > 0


def _locality_endpoints(backends: Backends, unhealthy_b: bool) -> list[Ep]:
    ports = backends.ports
    zone_a = [Ep(p, zone="a", locality_weight=1) for p in ports[:2]]
    zone_b = [
        Ep(ports[2], zone="b", locality_weight=3, health=UNHEALTHY if unhealthy_b else 0),
        Ep(ports[3], zone="b", locality_weight=3),
    ]
    return zone_a + zone_b


@pytest.mark.parametrize("unhealthy_b", [False, True], ids=["healthy", "zone-b-half-unhealthy"])
def test_locality_weighted_round_robin(
    envoy_for: EnvoyFactory, backends: Backends, unhealthy_b: bool
) -> None:
    """locality_weighted_lb_config, zones a:b weighted 1:3: the locality EDF runs on
    effective weights (3 * min(1, 1.4 * 1/2) = 2.1 with one of b's two hosts unhealthy), so
    zone a gets 1/4 or 1/3.1 of requests within 2 picks of exact, as in the reference."""
    common: Any = enum_cluster("loc", "ROUND_ROBIN").common_lb_config
    common.locality_weighted_lb_config.SetInParent()
    cluster = enum_cluster("loc", "ROUND_ROBIN", common_lb_config=common)
    case = Case(cluster, cla("loc", _locality_endpoints(backends, unhealthy_b)))
    zone_a = {backends.names[p] for p in backends.ports[:2]}
    share_a = 1 / 3.1 if unhealthy_b else 1 / 4
    n = 1240
    ref_counts = sequential_picks(reference(case.cluster, case.cla), n, backends.name_of)
    observed = _observe(envoy_for, case, n)
    print("envoy", sorted(observed.items()), "reference", sorted(ref_counts.items()))
    for picked in (ref_counts, observed):
        in_a = sum(v for k, v in picked.items() if k in zone_a)
        assert abs(in_a - n * share_a) <= 2, dict(picked)
        assert set(picked) == set(ref_counts), dict(picked)
        for name, count in picked.items():
            assert abs(count - ref_counts[name]) <= 3, (dict(picked), dict(ref_counts))


def test_locality_weighted_maglev_is_exact(envoy_for: EnvoyFactory, backends: Backends) -> None:
    """Typed Maglev with locality weights 1:3: host weights are scaled by locality share in
    the table, and every hashed request lands where the reference predicts."""
    config = Maglev()
    config.locality_weighted_lb_config.SetInParent()
    case = Case(
        typed_cluster("lmag", config),
        cla("lmag", _locality_endpoints(backends, unhealthy_b=False)),
        [header_policy("x-user")],
    )
    ref = reference(case.cluster, case.cla)
    keys = [f"user-{i}" for i in range(300)]
    policies = case.route_hash_policies
    want = [
        backends.name_of(
            ref.choose(ref.request_hash(headers={"x-user": k}, route_policies=policies))
        )
        for k in keys
    ]
    got = hashed_picks(envoy_for([case])[case.name], keys)
    assert got == want
    zone_a = sum(1 for g in got if g in {backends.names[p] for p in backends.ports[:2]})
    assert zone_a < len(keys) / 2  # zone b (weight 3) owns most of the table
