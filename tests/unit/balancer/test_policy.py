"""Reading the Cluster and CLA as Envoy does: policy selection, settings and rejections."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.pick_first.v3 import pick_first_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2

from tests.harness.balancer import Ep, cla, cluster, eps
from xdscp.balancer import BalancerError, Kind, build_balancer
from xdscp.balancer.hosts import host_sets, hosts_from_cla
from xdscp.balancer.policy import envoy_policy
from xdscp.model import Health


def test_zero_endpoint_weight_is_rejected() -> None:
    """load_balancing_weight 0 is a NACK in Envoy (and gRPC); the error names the field."""
    with pytest.raises(BalancerError, match=r"lb_endpoints\[0\]\.load_balancing_weight"):
        build_balancer(cluster(), cla([Ep("10.0.0.1:80", 0)]))


def test_zero_locality_weight_is_rejected() -> None:
    """A locality weight of 0 set explicitly is also outside the proto's range."""
    with pytest.raises(BalancerError, match=r"endpoints\[0\]\.load_balancing_weight"):
        build_balancer(cluster(), cla([Ep("10.0.0.1:80", locality_weight=0)]))


def test_hostname_address_is_rejected() -> None:
    """EDS addresses must be IP literals: Envoy says `malformed IP address`."""
    message = cla(eps(1))
    message.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address = "db.local"
    with pytest.raises(BalancerError, match="malformed IP address"):
        build_balancer(cluster(), message)


def test_unset_weight_is_one_and_health_mapping() -> None:
    """Unset weight -> 1; UNKNOWN/HEALTHY healthy, UNHEALTHY/TIMEOUT unhealthy, DEGRADED
    degraded, DRAINING excluded (kept in `hosts`, counted out of the denominator)."""
    statuses = ["unknown", "healthy", "unhealthy", "timeout", "degraded", "draining"]
    endpoints = [Ep(f"10.0.0.{i}:80", None, health=s) for i, s in enumerate(statuses, 1)]
    hosts = hosts_from_cla(cla(endpoints))
    assert [h.weight for h in hosts] == [1] * 6
    assert [h.health for h in hosts] == [
        Health.HEALTHY,
        Health.HEALTHY,
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.DEGRADED,
        Health.DRAINING,
    ]
    (host_set,) = host_sets(hosts)
    assert len(host_set.hosts) == 6
    assert host_set.available_count == 5


def test_host_order_and_locality_grouping() -> None:
    """Hosts keep CLA order per priority; localities are grouped and sorted by name."""
    endpoints = [
        Ep("10.0.0.9:80", zone="z"),
        Ep("10.0.0.1:80", zone="a"),
        Ep("10.0.0.5:80", zone="z"),
        Ep("10.0.1.1:80", priority=2),
    ]
    sets = host_sets(hosts_from_cla(cla(endpoints)))
    assert [str(h) for h in sets[0].hosts] == ["10.0.0.9:80", "10.0.0.5:80", "10.0.0.1:80"]
    assert [loc.zone for loc in sets[0].localities] == ["a", "z"]
    assert [[str(h) for h in g] for g in sets[0].hosts_per_locality] == [
        ["10.0.0.1:80"],
        ["10.0.0.9:80", "10.0.0.5:80"],
    ]
    assert [len(s.hosts) for s in sets] == [3, 0, 1]


def test_ipv6_hosts_print_bracketed() -> None:
    """IPv6 hosts print (and hash) as `[addr]:port`."""
    lb = build_balancer(cluster(), cla([Ep("[2001:db8::1]:443")]))
    assert str(lb.choose()) == "[2001:db8::1]:443"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0), (49.5, 49), (50.4, 50), (29.0, 28), (75.0, 75), (100.0, 100)],
)
def test_panic_threshold_is_truncated(value: float, expected: int) -> None:
    """healthy_panic_threshold is a Percent Envoy truncates to an integer (convertPercent)."""
    assert envoy_policy(cluster(panic=value)).panic_threshold == expected
    assert envoy_policy(cluster()).panic_threshold == 50


def test_least_request_enum_settings() -> None:
    """least_request_lb_config: choice_count and an explicit active_request_bias."""
    c = cluster("LEAST_REQUEST")
    c.least_request_lb_config.choice_count.value = 5
    c.least_request_lb_config.active_request_bias.default_value = 0.5
    settings = envoy_policy(c)
    assert (settings.kind, settings.choice_count, settings.active_request_bias) == (
        Kind.LEAST_REQUEST,
        5,
        0.5,
    )
    assert envoy_policy(cluster("LEAST_REQUEST")).active_request_bias is None


def test_typed_list_skips_unsupported_entries() -> None:
    """Envoy walks the typed list: pick_first (not an Envoy policy here) is skipped."""
    settings = envoy_policy(cluster(typed=[pick_first_pb2.PickFirst(), random_pb2.Random()]))
    assert settings.kind is Kind.RANDOM


def test_typed_list_with_nothing_supported_is_rejected() -> None:
    """No supported entry: Envoy rejects the cluster."""
    with pytest.raises(BalancerError, match="load balancer factory"):
        envoy_policy(cluster(typed=[pick_first_pb2.PickFirst()]))


def test_load_balancing_policy_config_without_list_is_rejected() -> None:
    """lb_policy LOAD_BALANCING_POLICY_CONFIG with no list is a NACK."""
    with pytest.raises(BalancerError, match="LOAD_BALANCING_POLICY_CONFIG"):
        envoy_policy(cluster("LOAD_BALANCING_POLICY_CONFIG"))


def test_typed_list_wins_over_the_enum() -> None:
    """load_balancing_policy present: lb_policy is ignored."""
    c = cluster("MAGLEV", typed=[least_request_pb2.LeastRequest()])
    assert envoy_policy(c).kind is Kind.LEAST_REQUEST


def test_typed_locality_config_and_wrr_locality() -> None:
    """Typed locality_lb_config and a wrr_locality wrapper both turn on locality weighting."""
    rr = round_robin_pb2.RoundRobin()
    rr.locality_lb_config.locality_weighted_lb_config.SetInParent()
    assert envoy_policy(cluster(typed=[rr])).locality_weighted
    assert not envoy_policy(cluster(typed=[round_robin_pb2.RoundRobin()])).locality_weighted
    wrapper = wrr_locality_pb2.WrrLocality()
    wrapper.endpoint_picking_policy.policies.add().typed_extension_config.typed_config.Pack(
        least_request_pb2.LeastRequest()
    )
    settings = envoy_policy(cluster(typed=[wrapper]))
    assert settings.kind is Kind.LEAST_REQUEST
    assert settings.locality_weighted


def test_ring_larger_than_envoy_maximum_is_rejected() -> None:
    """maximum_ring_size above 8,388,608 is outside the proto's range."""
    c = cluster("RING_HASH")
    c.ring_hash_lb_config.maximum_ring_size.value = 8_388_609
    with pytest.raises(BalancerError, match="maximum_ring_size"):
        envoy_policy(c)


def test_cluster_provided_is_not_supported() -> None:
    """CLUSTER_PROVIDED has no meaning for EDS clusters: the reference balancer refuses it."""
    with pytest.raises(BalancerError, match="CLUSTER_PROVIDED"):
        envoy_policy(cluster_pb2.Cluster(lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED))


def test_unknown_client_is_rejected() -> None:
    """Only "envoy" and "grpc" clients exist."""
    with pytest.raises(BalancerError, match="client"):
        build_balancer(cluster(), cla(eps(1)), client="nginx")  # type: ignore[arg-type]
