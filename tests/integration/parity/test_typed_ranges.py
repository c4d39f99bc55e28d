"""Out-of-range sizes inside typed `load_balancing_policy` configs: Envoy 1.40 runs them.

The proto range rules (RingHash `minimum_ring_size` 1..8388608, `maximum_ring_size` <=
8388608, Maglev `table_size` <= 5000011) are enforced by Envoy for the Cluster's own
`ring_hash_lb_config` / `maglev_lb_config` (test_rejected.py), but not for the typed configs
packed in `load_balancing_policy` (an `Any`): Envoy accepts such a cluster, builds its ring or
table with the given sizes and serves traffic. The reference must then predict that traffic,
not refuse the cluster.
"""

from __future__ import annotations

import pytest

from tests.harness.parity import Backends, Case, Deployment, EnvoyFactory, counts, hashed_picks
from tests.harness.stats import reference
from tests.integration.parity.protos import Ep, Maglev, RingHash, cla, header_policy, typed_cluster
from xdscp.balancer import Balancer

pytestmark = pytest.mark.envoy


def _case(backends: Backends, config: RingHash | Maglev) -> Case:
    endpoints = [Ep(p, w) for p, w in zip(backends.ports[:3], (1, 2, 3), strict=True)]
    return Case(typed_cluster("typed", config), cla("typed", endpoints), [header_policy("x-user")])


def _ring_served(
    envoy_for: EnvoyFactory, backends: Backends, **sizes: int
) -> tuple[Case, Deployment, str]:
    """A typed RingHash case with `sizes` (field -> value) served by Envoy; the ring size
    Envoy reports."""
    config = RingHash()
    for name, value in sizes.items():
        getattr(config, name).value = value
    case = _case(backends, config)
    deployment = envoy_for([case])
    ring_size = _stats(deployment.envoy.admin("/stats"))["cluster.typed.ring_hash_lb.size"]
    return case, deployment, ring_size


def _stats(deployment_admin: str) -> dict[str, str]:
    pairs = (line.partition(": ") for line in deployment_admin.splitlines())
    return {k: v for k, _, v in pairs if "ring_hash_lb" in k or "maglev_lb" in k}


def _predicted_picks(
    case: Case, backends: Backends, keys: list[str], ref: Balancer | None = None
) -> list[str]:
    ref = ref if ref is not None else reference(case.cluster, case.cla)
    policies = case.route_hash_policies
    hashes = [ref.request_hash(headers={"x-user": k}, route_policies=policies) for k in keys]
    return [backends.name_of(ref.choose(h)) for h in hashes]


def test_typed_maximum_ring_size_above_limit_is_served(
    envoy_for: EnvoyFactory, backends: Backends
) -> None:
    """Typed RingHash with maximum_ring_size 8388609 (default minimum 1024): Envoy builds its
    usual ring (weights 1:2:3, so ceil(1024 / 6) * 6 = 1026 entries) and hashes normally;
    the reference builds the same ring and every one of 200 hashed requests lands where it
    predicts."""
    case, deployment, ring_size = _ring_served(envoy_for, backends, maximum_ring_size=8_388_609)
    assert ring_size == "1026"
    keys = [f"user-{i}" for i in range(200)]
    got = hashed_picks(deployment[case.name], keys)
    assert len(set(got)) == 3, counts(got)
    assert got == _predicted_picks(case, backends, keys)


def test_typed_minimum_ring_size_zero_serves_nothing(
    envoy_for: EnvoyFactory, backends: Backends
) -> None:
    """Typed RingHash with minimum_ring_size 0: Envoy accepts the cluster with an empty ring
    and answers every request 503 (no host); the reference accepts it too and chooses no
    host."""
    case, deployment, ring_size = _ring_served(envoy_for, backends, minimum_ring_size=0)
    assert ring_size == "0"
    got = counts(hashed_picks(deployment[case.name], [f"user-{i}" for i in range(20)]))
    assert got == {"status:503": 20}
    ref = reference(case.cluster, case.cla)
    assert ref.choose(ref.request_hash(headers={"x-user": "user-1"})) is None


def test_typed_maglev_table_above_limit_is_served(
    envoy_for: EnvoyFactory, backends: Backends
) -> None:
    """Typed Maglev with table_size 5000077 (prime, above the 5000011 proto limit): Envoy
    builds a table of that size — its most and least loaded hosts own exactly as many entries
    as in the reference's table — and every one of 200 hashed requests lands where the
    reference predicts."""
    config = Maglev()
    config.table_size.value = 5_000_077
    case = _case(backends, config)
    ref = reference(case.cluster, case.cla)
    entries = ref.tables[0].counts  # type: ignore[attr-defined]
    assert sum(entries) == 5_000_077
    deployment = envoy_for([case])
    stats = _stats(deployment.envoy.admin("/stats"))
    assert stats["cluster.typed.maglev_lb.max_entries_per_host"] == str(max(entries))
    assert stats["cluster.typed.maglev_lb.min_entries_per_host"] == str(min(entries))
    keys = [f"user-{i}" for i in range(200)]
    got = hashed_picks(deployment[case.name], keys)
    assert got == _predicted_picks(case, backends, keys, ref)
    assert len(set(got)) == 3, counts(got)
