"""Parity of ROUND_ROBIN, LEAST_REQUEST (sequential) and RANDOM with a real Envoy (one worker).

EDF tolerance: a weighted scheduler keeps every prefix of its pick sequence within
`EDF_SLACK` picks of the exact weight share. Envoy starts its scheduler at a random point of the
same sequence (`create_with_picks`), and floating-point ties can shift one pick between hosts,
so a prefix of 10k requests is not always exactly 1:2:7 — the reference over 300 seeds never
strays more than 1.4 picks from the exact share.
"""

from __future__ import annotations

import pytest

from tests.harness.parity import Backends, Case, EnvoyFactory, counts, picks_from
from tests.harness.stats import assert_shares, reference, shares
from tests.integration.parity.protos import (
    Ep,
    LeastRequest,
    Random,
    RoundRobin,
    cla,
    enum_cluster,
    typed_cluster,
)
from xdscp.balancer import sequential_picks

pytestmark = pytest.mark.envoy

EDF_SLACK = 1.5
WEIGHTS = (1, 2, 7)


def _cluster(name: str, policy: str, typed: bool) -> object:
    if not typed:
        return enum_cluster(name, policy)
    config = {"ROUND_ROBIN": RoundRobin, "LEAST_REQUEST": LeastRequest, "RANDOM": Random}[policy]
    return typed_cluster(name, config())


def _run(envoy_for: EnvoyFactory, case: Case, requests: int) -> list[str]:
    return picks_from(envoy_for([case])[case.name], requests)


def _max_prefix_deviation(picks: list[str], expected: dict[str, float]) -> float:
    seen = dict.fromkeys(expected, 0)
    worst = 0.0
    for k, name in enumerate(picks, start=1):
        seen[name] += 1
        worst = max(worst, *(abs(seen[n] - k * p) for n, p in expected.items()))
    return worst


@pytest.mark.parametrize("typed", [False, True], ids=["lb_policy", "load_balancing_policy"])
@pytest.mark.parametrize("policy", ["ROUND_ROBIN", "LEAST_REQUEST"])
def test_weighted_edf_shares(
    envoy_for: EnvoyFactory, backends: Backends, policy: str, typed: bool
) -> None:
    """Weights 1:2:7 under RR and (sequential) least request: Envoy and the reference both
    run EDF, so every prefix of 1000 requests is within EDF_SLACK picks of 10/20/70 %."""
    ports = backends.ports[:3]
    case = Case(
        _cluster("edf", policy, typed),
        cla("edf", [Ep(p, w) for p, w in zip(ports, WEIGHTS, strict=True)]),
    )
    expected = {backends.names[p]: w / 10 for p, w in zip(ports, WEIGHTS, strict=True)}
    ref = reference(case.cluster, case.cla)
    ref_picks = [backends.name_of(ref.choose()) for _ in range(1000)]
    envoy_picks = _run(envoy_for, case, 1000)
    print(
        "envoy", sorted(counts(envoy_picks).items()), "reference", sorted(counts(ref_picks).items())
    )
    assert _max_prefix_deviation(ref_picks, expected) <= EDF_SLACK
    assert _max_prefix_deviation(envoy_picks, expected) <= EDF_SLACK, counts(envoy_picks)


@pytest.mark.parametrize("typed", [False, True], ids=["lb_policy", "load_balancing_policy"])
def test_round_robin_equal_weights_rotate(
    envoy_for: EnvoyFactory, backends: Backends, typed: bool
) -> None:
    """Equal weights: Envoy's picks are exactly the CLA host order rotated from some start,
    as the reference's are (only the start differs: it is the worker's random seed)."""
    ports = backends.ports[:4]
    case = Case(_cluster("rot", "ROUND_ROBIN", typed), cla("rot", [Ep(p, 3) for p in ports]))
    order = [backends.names[p] for p in ports]
    ref = reference(case.cluster, case.cla)
    ref_picks = [backends.name_of(ref.choose()) for _ in range(400)]
    envoy_picks = _run(envoy_for, case, 400)
    for picks in (ref_picks, envoy_picks):
        start = order.index(picks[0])
        assert picks == [order[(start + i) % 4] for i in range(400)]


def test_least_request_equal_weights_uniform(envoy_for: EnvoyFactory, backends: Backends) -> None:
    """Equal weights, sequential requests (no active requests): P2C keeps its first sample,
    so picks are uniform over the 4 hosts, as the reference predicts (5 sigma, n=1200)."""
    ports = backends.ports[:4]
    case = Case(_cluster("p2c", "LEAST_REQUEST", False), cla("p2c", [Ep(p) for p in ports]))
    predicted = shares(sequential_picks(reference(case.cluster, case.cla), 20000, backends.name_of))
    observed = counts(_run(envoy_for, case, 1200))
    first = backends.names[ports[0]]
    assert_shares(observed, predicted, 1200, reference_picks=20000, alternative={first: 1.0})


@pytest.mark.parametrize("typed", [False, True], ids=["lb_policy", "load_balancing_policy"])
def test_random_ignores_weights(envoy_for: EnvoyFactory, backends: Backends, typed: bool) -> None:
    """RANDOM with weights 1:2:7 spreads uniformly (weights ignored), as the reference
    predicts; the 5-sigma bands (n=1500) exclude the weighted 10/20/70 split."""
    ports = backends.ports[:3]
    endpoints = [Ep(p, w) for p, w in zip(ports, WEIGHTS, strict=True)]
    case = Case(_cluster("rnd", "RANDOM", typed), cla("rnd", endpoints))
    predicted = shares(sequential_picks(reference(case.cluster, case.cla), 30000, backends.name_of))
    observed = counts(_run(envoy_for, case, 1500))
    weighted = {backends.names[p]: w / 10 for p, w in zip(ports, WEIGHTS, strict=True)}
    assert_shares(observed, predicted, 1500, reference_picks=30000, alternative=weighted)
