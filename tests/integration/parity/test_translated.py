"""Every policy as xdscp translates it: a real Envoy's traffic matches the reference balancer.

The Cluster and ClusterLoadAssignment come from `xdscp.translate` (what `xdscp serve` sends);
Envoy runs them as static copies, and the reference balancer predicts from the same protos.
"""

from __future__ import annotations

import pytest

from tests.harness.parity import Backends, Case, Client, EnvoyFactory, counts, picks_from
from tests.harness.stats import assert_shares, reference, shares
from xdscp.balancer import sequential_picks
from xdscp.model import BalancingPolicy, Endpoint, HashOn, Health, LbPolicy, Service
from xdscp.testing import free_port
from xdscp.translate import cluster_for, load_assignment_for

pytestmark = pytest.mark.envoy

WEIGHTS = (1, 2, 7)
REFERENCE_PICKS = 20_000


def _service(
    backends: Backends, policy: BalancingPolicy, health: tuple[Health, ...] = ()
) -> Service:
    endpoints = tuple(
        Endpoint("127.0.0.1", port, weight=w, health=health[i] if health else Health.HEALTHY)
        for i, (port, w) in enumerate(zip(backends.ports, WEIGHTS, strict=False))
    )
    return Service(f"svc-{policy.lb}", endpoints, policy)


def _case(service: Service) -> Case:
    return Case(cluster_for(service), load_assignment_for(service))


def _predicted(case: Case, backends: Backends) -> dict[str, float]:
    ref = reference(case.cluster, case.cla)
    return shares(sequential_picks(ref, REFERENCE_PICKS, backends.name_of))


@pytest.mark.parametrize(
    ("lb", "n", "wrong"),
    [
        ("round_robin", 300, {"b0": 0.1, "b1": 0.2, "b2": 0.7}),  # weights must NOT apply
        ("weighted_round_robin", 300, {"b0": 1 / 3, "b1": 1 / 3, "b2": 1 / 3}),
        ("random", 1200, {"b0": 0.1, "b1": 0.2, "b2": 0.7}),  # Envoy's RANDOM ignores weights
        ("weighted_random", 1200, {"b0": 1 / 3, "b1": 1 / 3, "b2": 1 / 3}),
        ("least_request", 600, {"b0": 1 / 3, "b1": 1 / 3, "b2": 1 / 3}),
        # no load reports (these backends send none): registered weights must NOT apply
        ("client_side_weighted_round_robin", 300, {"b0": 0.1, "b1": 0.2, "b2": 0.7}),
    ],
)
def test_translated_policy_splits_like_the_reference(
    envoy_for: EnvoyFactory, backends: Backends, lb: str, n: int, wrong: dict[str, float]
) -> None:
    """Sequential requests through Envoy split as the reference predicts for the translated
    cluster, and measurably differently from the plausible wrong split (`wrong`)."""
    case = _case(_service(backends, BalancingPolicy(lb=LbPolicy(lb))))
    deployment = envoy_for([case])
    observed = counts(picks_from(deployment[case.name], n))
    predicted = _predicted(case, backends)
    assert_shares(observed, predicted, n, reference_picks=REFERENCE_PICKS, alternative=wrong)


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
def test_translated_hash_policy_in_cds_picks_exactly(
    envoy_for: EnvoyFactory, backends: Backends, lb: str
) -> None:
    """The header hash policy travels in CDS only (the route has none): each of 150 users
    lands exactly where the reference balancer sends that user's hash."""
    policy = BalancingPolicy(lb=LbPolicy(lb), hash_on=(HashOn.parse("header:x-user"),))
    case = _case(_service(backends, policy))
    deployment = envoy_for([case])
    ref = reference(case.cluster, case.cla)
    users = [f"user-{i}" for i in range(150)]
    client = Client(deployment[case.name])
    try:
        got = [client.get("/", {"x-user": u}) for u in users]
    finally:
        client.close()
    want = [backends.name_of(ref.choose(ref.request_hash(headers={"x-user": u}))) for u in users]
    assert got == want
    assert len(set(got)) == 3


def test_translated_source_ip_hash_follows_the_client_address(
    envoy_for: EnvoyFactory, backends: Backends
) -> None:
    """source_ip_hash: clients on 24 loopback addresses each stick to the backend the
    reference predicts for their IP, on every request."""
    case = _case(_service(backends, BalancingPolicy(lb=LbPolicy.SOURCE_IP_HASH)))
    deployment = envoy_for([case])
    ref = reference(case.cluster, case.cla)
    got, want = {}, {}
    for i in range(2, 26):
        ip = f"127.0.0.{i}"
        client = Client(deployment[case.name], source_ip=ip)
        try:
            got[ip] = set(client.picks(3))
        finally:
            client.close()
        want[ip] = {backends.name_of(ref.choose(ref.request_hash(source_ip=ip)))}
    assert got == want
    assert len({next(iter(v)) for v in got.values()}) > 1


@pytest.mark.parametrize(("threshold", "expect_all"), [(50.0, True), (0.0, False)])
def test_panic_threshold_is_effective_with_typed_policies(
    envoy_for: EnvoyFactory, backends: Backends, threshold: float, expect_all: bool
) -> None:
    """One healthy host of three: at the default 50 % threshold Envoy panics and balances
    over all three; with the threshold translated as 0 it sends everything to the healthy
    one. The typed round-robin policy honours the cluster's common_lb_config threshold."""
    policy = BalancingPolicy(lb=LbPolicy.ROUND_ROBIN, panic_threshold=threshold)
    health = (Health.HEALTHY, Health.UNHEALTHY, Health.UNHEALTHY)
    case = _case(_service(backends, policy, health))
    deployment = envoy_for([case])
    observed = counts(picks_from(deployment[case.name], 90))
    predicted = _predicted(case, backends)
    assert set(observed) == ({"b0", "b1", "b2"} if expect_all else {"b0"})
    assert_shares(observed, predicted, 90, reference_picks=REFERENCE_PICKS)


@pytest.mark.parametrize(
    ("threshold", "healthy", "panic"),
    [(33.9, 1, False), (34.0, 1, True), (29.0, 2, False), (29.5, 2, True)],
)
def test_panic_threshold_is_truncated_as_envoy_converts_it(
    envoy_for: EnvoyFactory, backends: Backends, threshold: float, healthy: int, panic: bool
) -> None:
    """Envoy makes `healthy_panic_threshold` an integer as `uint64(100 * (percent / 100.0))`:
    1 of 3 hosts healthy (33.3 %) is no panic at 33.9 (33, truncated) but is at 34; 2 of 7
    (28.6 %) is no panic at 29.0 (28.999999999999996 -> 28) but is at 29.5. The reference
    balancer (and so the gRPC translation) reads the threshold the same way. The seventh host
    listens nowhere: in panic its turn is a 503."""
    ports = [*backends.ports[: 3 if healthy == 1 else 6], *([free_port()] if healthy == 2 else [])]
    endpoints = tuple(
        Endpoint("127.0.0.1", port, health=Health.HEALTHY if i < healthy else Health.UNHEALTHY)
        for i, port in enumerate(ports)
    )
    policy = BalancingPolicy(lb=LbPolicy.ROUND_ROBIN, panic_threshold=threshold)
    case = _case(Service("svc-threshold", endpoints, policy))
    assert reference(case.cluster, case.cla).load.panic == (panic,)  # type: ignore[attr-defined]
    observed = counts(picks_from(envoy_for([case])[case.name], 10 * len(ports)))
    served = {
        backends.names[p] for p in ports[: len(ports) if panic else healthy] if p in backends.names
    }
    assert set(observed) - {"status:503"} == served
    assert ("status:503" in observed) == (panic and healthy == 2)
