"""Configurations Envoy refuses are refused by the reference balancer too.

Each case is checked with `envoy --mode validate` on the same static bootstrap the traffic
tests use (a non-zero exit whose output names the problem) and with `build_balancer`
(BalancerError). A valid twin of every case passes both, so a failure of the harness itself
cannot pass for a rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from tests.harness.parity import Case, validate
from tests.harness.stats import reference
from tests.integration.parity.protos import Ep, Maglev, RingHash, cla, enum_cluster, typed_cluster
from xdscp.errors import BalancerError

pytestmark = pytest.mark.envoy

PORTS = (18001, 18002, 18003)  # never contacted: validate mode starts nothing


def _endpoints(weight: int | None = 1, locality_weight: int | None = None) -> list[Ep]:
    return [
        Ep(PORTS[0], weight, zone="a", locality_weight=locality_weight),
        Ep(PORTS[1], 2, zone="a", locality_weight=locality_weight),
        Ep(PORTS[2], 3, zone="a", locality_weight=locality_weight),
    ]


def _maglev_enum(size: int) -> Case:
    config = cluster_pb2.Cluster.MaglevLbConfig()
    config.table_size.value = size
    return Case(enum_cluster("bad", "MAGLEV", maglev_lb_config=config), cla("bad", _endpoints()))


def _maglev_typed(size: int) -> Case:
    config = Maglev()
    config.table_size.value = size
    return Case(typed_cluster("bad", config), cla("bad", _endpoints()))


def _ring(minimum: int, maximum: int) -> Case:
    config = RingHash()
    config.minimum_ring_size.value = minimum
    config.maximum_ring_size.value = maximum
    return Case(typed_cluster("bad", config), cla("bad", _endpoints()))


def _enum_ring(maximum: int) -> Case:
    config = cluster_pb2.Cluster.RingHashLbConfig()
    config.maximum_ring_size.value = maximum
    return Case(
        enum_cluster("bad", "RING_HASH", ring_hash_lb_config=config), cla("bad", _endpoints())
    )


def _policy_config(with_policy: bool) -> Case:
    cluster = enum_cluster("bad", "LOAD_BALANCING_POLICY_CONFIG")
    if with_policy:
        cluster = typed_cluster("bad", Maglev())
        cluster.lb_policy = cluster_pb2.Cluster.LOAD_BALANCING_POLICY_CONFIG
    return Case(cluster, cla("bad", _endpoints()))


# id -> (invalid case, valid twin, fragment of Envoy's complaint)
CASES: dict[str, tuple[Callable[[], Case], Callable[[], Case], str]] = {
    "endpoint-weight-0": (
        lambda: Case(enum_cluster("bad", "ROUND_ROBIN"), cla("bad", _endpoints(weight=0))),
        lambda: Case(enum_cluster("bad", "ROUND_ROBIN"), cla("bad", _endpoints(weight=1))),
        "LoadBalancingWeight",
    ),
    "locality-weight-0": (
        lambda: Case(enum_cluster("bad", "ROUND_ROBIN"), cla("bad", _endpoints(locality_weight=0))),
        lambda: Case(enum_cluster("bad", "ROUND_ROBIN"), cla("bad", _endpoints(locality_weight=2))),
        "LoadBalancingWeight",
    ),
    "maglev-table-not-prime": (lambda: _maglev_enum(1000), lambda: _maglev_enum(1009), "prime"),
    "typed-maglev-table-not-prime": (
        lambda: _maglev_typed(65536),
        lambda: _maglev_typed(65537),
        "prime",
    ),
    "maglev-table-too-large": (
        lambda: _maglev_enum(5000077),
        lambda: _maglev_enum(5000011),
        "TableSize",
    ),
    "ring-min-above-max": (lambda: _ring(4096, 1024), lambda: _ring(1024, 4096), "ring"),
    "ring-max-too-large": (
        lambda: _enum_ring(8388609),
        lambda: _enum_ring(8388608),
        "MaximumRingSize",
    ),
    "policy-config-without-policy": (
        lambda: _policy_config(with_policy=False),
        lambda: _policy_config(with_policy=True),
        "load_balancing_policy need to be set",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_envoy_and_reference_both_reject(name: str, tmp_path: Path) -> None:
    """Envoy's validate mode refuses the config and build_balancer raises BalancerError;
    the valid twin is accepted by both."""
    make_invalid, make_valid, fragment = CASES[name]
    invalid, valid = make_invalid(), make_valid()
    rejected: Any = validate([invalid], tmp_path / "invalid")
    assert rejected.returncode != 0
    assert fragment.lower() in (rejected.stdout + rejected.stderr).lower(), rejected.stderr[-2000:]
    with pytest.raises(BalancerError):
        reference(invalid.cluster, invalid.cla)
    accepted = validate([valid], tmp_path / "valid")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    reference(valid.cluster, valid.cla)
