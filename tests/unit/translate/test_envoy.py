"""Each policy maps onto the Envoy resources the README's table promises, field by field."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import health_check_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from xdscp.errors import TranslationError, ValidationError
from xdscp.model import BalancingPolicy, Endpoint, HashOn, Health, LbPolicy, Locality, Service
from xdscp.translate import TranslateOptions, cluster_for, load_assignment_for, route_configuration
from xdscp.translate.envoy import HTTP_PROTOCOL_OPTIONS

EPS = (
    Endpoint("10.0.0.1", 80, weight=1, locality=Locality("eu", "a")),
    Endpoint("10.0.0.2", 80, weight=2, locality=Locality("eu", "a"), health=Health.DEGRADED),
    Endpoint("10.0.0.3", 80, weight=7, locality=Locality("eu", "b"), hash_key="k3"),
    Endpoint("10.0.0.4", 80, weight=5, priority=1, health=Health.DRAINING, metadata={"v": "2"}),
)


def _typed(service: Service) -> tuple[str, object]:
    (entry,) = cluster_for(service).load_balancing_policy.policies
    return entry.typed_extension_config.name, entry.typed_extension_config.typed_config


@pytest.mark.parametrize(
    ("lb", "extension"),
    [
        ("round_robin", "round_robin"),
        ("weighted_round_robin", "round_robin"),
        ("random", "random"),
        ("weighted_random", "maglev"),
        ("least_request", "least_request"),
        ("ring_hash", "ring_hash"),
        ("maglev", "maglev"),
        ("source_ip_hash", "maglev"),
    ],
)
def test_policy_extension(lb: str, extension: str) -> None:
    """Each xdscp policy selects one typed Envoy policy; EDS comes over ADS."""
    service = Service("web", EPS, BalancingPolicy(lb=LbPolicy(lb)))
    name, _ = _typed(service)
    assert name == f"envoy.load_balancing_policies.{extension}"
    cluster = cluster_for(service)
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert cluster.common_lb_config.healthy_panic_threshold.value == 50.0


def test_round_robin_sends_no_weights_weighted_does() -> None:
    """Plain round robin: endpoints weigh 1 (equal shares); weighted round robin sends them."""
    plain = load_assignment_for(Service("web", EPS, BalancingPolicy(lb=LbPolicy.ROUND_ROBIN)))
    weighted = load_assignment_for(Service("web", EPS, BalancingPolicy(lb="weighted_round_robin")))
    assert [
        e.HasField("load_balancing_weight") for g in plain.endpoints for e in g.lb_endpoints
    ] == [False] * 4
    assert [e.load_balancing_weight.value for g in weighted.endpoints for e in g.lb_endpoints] == [
        1,
        2,
        7,
        5,
    ]
    assert [g.load_balancing_weight.value for g in plain.endpoints] == [2, 1, 1]
    assert [g.load_balancing_weight.value for g in weighted.endpoints] == [3, 7, 5]


def test_load_assignment_groups_health_metadata_and_overprovisioning() -> None:
    """Localities per (priority, locality), health statuses, envoy.lb hash_key, xdscp metadata."""
    policy = BalancingPolicy(lb=LbPolicy.MAGLEV, overprovisioning_factor=200)
    cla = load_assignment_for(Service("web", EPS, policy))
    assert cla.cluster_name == "web"
    assert cla.policy.overprovisioning_factor.value == 200
    groups = [(g.priority, g.locality.region, g.locality.zone) for g in cla.endpoints]
    assert groups == [(0, "eu", "a"), (0, "eu", "b"), (1, "", "")]
    lb_eps = [e for g in cla.endpoints for e in g.lb_endpoints]
    assert [e.health_status for e in lb_eps] == [
        health_check_pb2.HEALTHY,
        health_check_pb2.DEGRADED,
        health_check_pb2.HEALTHY,
        health_check_pb2.DRAINING,
    ]
    assert lb_eps[2].metadata.filter_metadata["envoy.lb"]["hash_key"] == "k3"
    assert lb_eps[3].metadata.filter_metadata["xdscp"]["v"] == "2"
    assert all(g.HasField("load_balancing_weight") for g in cla.endpoints)


def test_hash_policies_travel_in_cds() -> None:
    """ring_hash carries sizes, hash function and every hash input in the typed config."""
    policy = BalancingPolicy(
        lb=LbPolicy.RING_HASH,
        hash_on=(
            HashOn.parse("header:x-user"),
            HashOn.parse("cookie:sess"),
            HashOn.parse("source_ip"),
        ),
        min_ring_size=2048,
        max_ring_size=4096,
        hash_function="murmur_hash_2",
    )
    _, any_config = _typed(Service("web", EPS, policy))
    ring = ring_hash_pb2.RingHash()
    assert any_config.Unpack(ring)  # type: ignore[attr-defined]
    assert (ring.minimum_ring_size.value, ring.maximum_ring_size.value) == (2048, 4096)
    assert ring.hash_function == ring_hash_pb2.RingHash.MURMUR_HASH_2
    kinds = [
        hp.WhichOneof("policy_specifier") for hp in ring.consistent_hashing_lb_config.hash_policy
    ]
    assert kinds == ["header", "cookie", "connection_properties"]


def test_source_ip_hash_and_weighted_random() -> None:
    """source_ip_hash hashes the connection's source IP; weighted_random hashes nothing."""
    for lb, expected in (("source_ip_hash", ["connection_properties"]), ("weighted_random", [])):
        _, any_config = _typed(
            Service("web", EPS, BalancingPolicy(lb=LbPolicy(lb), maglev_table_size=251))
        )
        maglev = maglev_pb2.Maglev()
        assert any_config.Unpack(maglev)  # type: ignore[attr-defined]
        assert maglev.table_size.value == 251
        kinds = [
            hp.WhichOneof("policy_specifier")
            for hp in maglev.consistent_hashing_lb_config.hash_policy
        ]
        assert kinds == expected


def test_least_request_settings_only_when_set() -> None:
    """Defaults stay unset (Envoy's defaults); choice count and bias are sent when chosen."""
    _, default = _typed(Service("web", EPS, BalancingPolicy(lb=LbPolicy.LEAST_REQUEST)))
    lr = least_request_pb2.LeastRequest()
    assert default.Unpack(lr)  # type: ignore[attr-defined]
    assert not lr.HasField("choice_count")
    assert not lr.HasField("active_request_bias")
    custom = BalancingPolicy(lb=LbPolicy.LEAST_REQUEST, choice_count=3, active_request_bias=0.5)
    _, configured = _typed(Service("web", EPS, custom))
    assert configured.Unpack(lr)  # type: ignore[attr-defined]
    assert (lr.choice_count.value, lr.active_request_bias.default_value) == (3, 0.5)


def test_locality_weighted_is_passed_on() -> None:
    """locality_weighted turns on Envoy's locality-weighted balancing in the typed config."""
    policy = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN, locality_weighted=True)
    _, any_config = _typed(Service("web", EPS, policy))
    rr = round_robin_pb2.RoundRobin()
    assert any_config.Unpack(rr)  # type: ignore[attr-defined]
    assert rr.locality_lb_config.HasField("locality_weighted_lb_config")


def test_weights_beyond_uint32_per_priority_are_refused() -> None:
    """Envoy rejects a priority whose endpoint weights add up past 2^32-1: caught here first."""
    heavy = tuple(Endpoint(f"10.0.0.{i}", 80, weight=2**31) for i in (1, 2))
    with pytest.raises(TranslationError, match="more than 4294967295"):
        load_assignment_for(Service("heavy", heavy, BalancingPolicy(lb="weighted_round_robin")))


def test_routes_name_only_given_clusters_with_host_domains() -> None:
    """A virtual host per service, Host NAME or NAME:port (plus suffixes), and a catch-all."""
    options = TranslateOptions(domain_suffixes=(".svc",), default_service="api")
    config = route_configuration(["web", "api"], options)
    hosts = {vh.name: (list(vh.domains), vh.routes[0].route.cluster) for vh in config.virtual_hosts}
    assert hosts == {
        "api": (["api", "api:*", "api.svc", "api.svc:*"], "api"),
        "web": (["web", "web:*", "web.svc", "web.svc:*"], "web"),
        "default": (["*"], "api"),
    }


def test_http2_upstreams_only_when_asked() -> None:
    """`upstream_protocol: http2` adds HttpProtocolOptions with explicit HTTP/2; the default
    (http1) adds nothing, so existing clusters are unchanged byte for byte."""
    endpoints = (Endpoint("10.0.0.1", 80),)
    plain = cluster_for(Service("web", endpoints))
    assert not plain.typed_extension_protocol_options
    h2 = cluster_for(Service("web", endpoints, BalancingPolicy(upstream_protocol="http2")))  # type: ignore[arg-type]
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert h2.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    with pytest.raises(ValidationError, match="upstream_protocol: must be one of http1, http2"):
        BalancingPolicy(upstream_protocol="h3")  # type: ignore[arg-type]


def test_route_table_assembled_from_hosts_is_byte_for_byte_the_packed_message() -> None:
    """The route table built from cached virtual-host bytes equals packing the message
    (name, every host in order, the default host), so versions are what they always were."""
    from google.protobuf import any_pb2

    from xdscp.translate.envoy import route_configuration_any, virtual_host_bytes

    options = TranslateOptions(domain_suffixes=(".svc",), default_service="web")
    names = ["api", "web", "zeta"]
    packed = any_pb2.Any()
    packed.Pack(route_configuration(names, options), deterministic=True)
    hosts = [virtual_host_bytes(n, options) for n in names]
    assert route_configuration_any(hosts, names, options) == packed.SerializeToString(
        deterministic=True
    )
