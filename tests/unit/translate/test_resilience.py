"""Resilience policies → Envoy and gRPC fields: each client gets what it reads, nothing it NACKs."""

from __future__ import annotations

import os
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2, text_format
from hypothesis import given, settings

from tests.harness import model
from tests.harness.paths import GOLDEN
from tests.unit.translate.resilience_strategies import policies
from xdscp.cache import TypeUrl
from xdscp.model import (
    GRPC_RETRY_ON,
    BalancingPolicy,
    ClientKind,
    Endpoint,
    LbPolicy,
    Service,
)
from xdscp.translate import TranslateOptions, cluster_for, route_configuration, translator_for
from xdscp.translate.grpc import grpc_cluster, grpc_route_configuration, grpc_warnings
from xdscp.translate.resilience import GRPC_MAX_ATTEMPTS

UPDATE = os.environ.get("XDSCP_UPDATE_GOLDEN") == "1"
ENDPOINTS = (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080))

FULL = {
    "lb": "least_request",
    "outlier_detection": {
        "consecutive_5xx": 3,
        "interval": "2s",
        "base_ejection_time": "30s",
        "max_ejection_percent": 50,
        "failure_percentage": {"threshold": 50, "minimum_hosts": 2, "request_volume": 10},
    },
    "health_check": {"kind": "http", "path": "/healthz", "interval": "1s", "timeout": "250ms"},
    "slow_start": {"window": "30s", "aggression": 2.0},
    "circuit_breakers": {"max_requests": 64, "max_pending_requests": 8},
    "retries": {
        "retry_on": ["5xx", "unavailable", "reset"],
        "num_retries": 7,
        "per_try_timeout": "500ms",
    },
    "timeout": "3s",
}


def _route_action(config: Any) -> Any:
    return config.virtual_hosts[0].routes[0].route


def test_envoy_cluster_carries_every_part() -> None:
    """Outlier detection (only the detectors asked for enforce), one HTTP health check run at
    its interval even without traffic, slow start in the typed least_request
    policy, DEFAULT-priority circuit breakers with only the limits given."""
    cluster = cluster_for(model.service(ENDPOINTS, **FULL))
    od = cluster.outlier_detection
    assert (od.consecutive_5xx.value, od.enforcing_consecutive_5xx.value) == (3, 100)
    assert od.enforcing_consecutive_gateway_failure.value == 0
    assert od.enforcing_success_rate.value == 0  # on by default in Envoy: switched off
    assert (od.failure_percentage_threshold.value, od.enforcing_failure_percentage.value) == (
        50,
        100,
    )
    assert od.interval.ToMilliseconds() == 2000
    (check,) = cluster.health_checks
    assert check.http_health_check.path == "/healthz"
    assert check.timeout.ToMilliseconds() == 250
    assert check.no_traffic_interval == check.interval
    assert (check.healthy_threshold.value, check.unhealthy_threshold.value) == (2, 3)
    (threshold,) = cluster.circuit_breakers.thresholds
    assert threshold.max_requests.value == 64
    assert threshold.max_pending_requests.value == 8
    assert not threshold.HasField("max_connections")
    from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2

    typed = least_request_pb2.LeastRequest()
    entry = cluster.load_balancing_policy.policies[0].typed_extension_config
    assert entry.typed_config.Unpack(typed)
    assert typed.slow_start_config.slow_start_window.seconds == 30
    assert typed.slow_start_config.aggression.default_value == 2.0
    assert typed.slow_start_config.min_weight_percent.value == 10.0


def test_envoy_route_has_retries_and_timeout() -> None:
    """The service's virtual host retries on every name given, to other hosts, with its
    per-try timeout and backoff; the route timeout is set; other services are untouched."""
    config = route_configuration(
        ["web", "api"], TranslateOptions(), {"web": model.service(ENDPOINTS, **FULL).policy}
    )
    api, web = (host.routes[0].route for host in config.virtual_hosts)
    assert web.retry_policy.retry_on == "5xx,reset,unavailable"
    assert web.retry_policy.num_retries.value == 7
    assert web.retry_policy.per_try_timeout.ToMilliseconds() == 500
    assert web.retry_policy.retry_back_off.max_interval.ToMilliseconds() == 250
    assert web.retry_policy.retry_host_predicate[0].name.endswith("previous_hosts")
    assert web.timeout.seconds == 3
    assert not api.HasField("retry_policy")
    assert not api.HasField("timeout")


def test_zero_timeout_disables_envoys_default_and_zero_retries_send_none() -> None:
    """timeout 0 is sent (Envoy's 15 s default would apply otherwise); num_retries 0 sends
    no retry policy to either client (grpc-go NACKs num_retries 0)."""
    policy = model.service(
        ENDPOINTS, timeout=0, retries={"num_retries": 0, "retry_on": ["unavailable"]}
    ).policy
    web = _route_action(route_configuration(["web"], TranslateOptions(), {"web": policy}))
    assert web.HasField("timeout")
    assert web.timeout.seconds == 0
    assert not web.HasField("retry_policy")
    grpc = _route_action(grpc_route_configuration(Service("web", ENDPOINTS, policy)))
    assert not grpc.HasField("retry_policy")
    assert not grpc.HasField("max_stream_duration")


def test_hash_balance_factor_reaches_ring_and_maglev() -> None:
    """Bounded load sits in the consistent-hashing config of both hashing policies."""
    from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
    from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2

    for lb, message in (("ring_hash", ring_hash_pb2.RingHash()), ("maglev", maglev_pb2.Maglev())):
        cluster = cluster_for(model.service(ENDPOINTS, lb=lb, hash_on=(), hash_balance_factor=150))
        entry = cluster.load_balancing_policy.policies[0].typed_extension_config
        assert entry.typed_config.Unpack(message)
        assert message.consistent_hashing_lb_config.hash_balance_factor.value == 150


def test_grpc_gets_what_it_implements() -> None:
    """gRPC: failure percentage without the consecutive detectors, max_requests only, retries
    on gRPC status names only, attempts capped, timeout as max_stream_duration; no health
    check and no slow start reach it, and the notes say so."""
    service = model.service(ENDPOINTS, **FULL)
    cluster = grpc_cluster(service)
    od = cluster.outlier_detection
    assert not od.HasField("consecutive_5xx")
    assert od.enforcing_failure_percentage.value == 100
    assert od.enforcing_success_rate.value == 0
    assert not cluster.health_checks
    (threshold,) = cluster.circuit_breakers.thresholds
    assert threshold.max_requests.value == 64
    assert not threshold.HasField("max_pending_requests")
    action = _route_action(grpc_route_configuration(service))
    assert action.retry_policy.retry_on == "unavailable"
    assert action.retry_policy.num_retries.value == GRPC_MAX_ATTEMPTS - 1
    assert not action.retry_policy.HasField("per_try_timeout")
    assert action.max_stream_duration.max_stream_duration.seconds == 3
    notes = "\n".join(grpc_warnings(service))
    for expected in ("consecutive_5xx", "health_check", "slow_start", "max_requests only",
                     "5xx, reset ignored", "caps attempts", "per_try_timeout"):  # fmt: skip
        assert expected in notes


def test_grpc_gets_no_outlier_detection_it_cannot_run() -> None:
    """consecutive_5xx alone sends no outlier_detection to gRPC (it would otherwise run
    nothing, or, with enforcing_success_rate unset, success-rate ejection by default)."""
    cluster = grpc_cluster(model.service(ENDPOINTS, outlier_detection={"consecutive_5xx": 5}))
    assert not cluster.HasField("outlier_detection")
    assert not grpc_warnings(model.service(ENDPOINTS)), "a plain policy has no notes"


def test_translator_rebuilds_the_route_table_when_retries_change() -> None:
    """Changing a service's retries or timeout re-sends the route table; changing its
    endpoints does not."""
    translator = translator_for(options=TranslateOptions())
    first = translator.translate({"web": model.service(ENDPOINTS)}).snapshot
    moved = Service("web", ENDPOINTS[:1], BalancingPolicy())
    second = translator.translate({"web": moved}).snapshot
    assert second.versions[TypeUrl.ROUTE] == first.versions[TypeUrl.ROUTE]
    retried = Service("web", ENDPOINTS[:1], BalancingPolicy(retries={"num_retries": 2}))  # type: ignore[arg-type]
    third = translator.translate({"web": retried}).snapshot
    assert third.versions[TypeUrl.ROUTE] != second.versions[TypeUrl.ROUTE]
    table = route_pb2.RouteConfiguration()
    wrapped = any_pb2.Any.FromString(
        third.resources[TypeUrl.ROUTE][TranslateOptions().route_name].any_bytes
    )
    assert wrapped.Unpack(table)
    assert table.virtual_hosts[0].routes[0].route.retry_policy.num_retries.value == 2
    fresh = translator_for(options=TranslateOptions()).translate({"web": retried}).snapshot
    assert fresh.versions == third.versions, "incremental and one-shot agree"


def test_grpc_translator_notes_the_resilience_gaps() -> None:
    """The gRPC translator records the notes `/debug/nodes` shows as policy_notes."""
    translator = translator_for(ClientKind.GRPC, TranslateOptions())
    translator.translate({"web": model.service(ENDPOINTS, **FULL)})
    assert any("health_check" in note for note in translator.notes["web"])


@pytest.mark.parametrize("client", ["envoy", "grpc"])
def test_golden_resilient_resources(client: str) -> None:
    """The full policy's Cluster and route, per client, equal the reviewed golden text."""
    service = model.service(ENDPOINTS, **FULL)
    if client == "envoy":
        cluster = cluster_for(service)
        route = route_configuration(["web"], TranslateOptions(), {"web": service.policy})
    else:
        cluster, route = grpc_cluster(service), grpc_route_configuration(service)
    text = text_format.MessageToString(cluster) + "---\n" + text_format.MessageToString(route)
    path = GOLDEN / f"resilient_{client}.txtpb"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def _grpc_go_accepts(cluster: cluster_pb2.Cluster, route: route_pb2.RouteConfiguration) -> None:
    """grpc-go's checks (xdsresource unmarshal_cds.go / unmarshal_rds.go) on what it reads."""
    od = cluster.outlier_detection
    for value in (od.max_ejection_percent, od.enforcing_success_rate,
                  od.failure_percentage_threshold, od.enforcing_failure_percentage):  # fmt: skip
        assert value.value <= 100
    for span in (od.interval, od.base_ejection_time, od.max_ejection_time):
        assert span.seconds >= 0
        assert span.nanos >= 0
    action = route.virtual_hosts[0].routes[0].route
    if action.HasField("retry_policy"):
        retry = action.retry_policy
        assert retry.num_retries.value >= 1
        assert retry.retry_back_off.base_interval.ToNanoseconds() > 0
        assert retry.retry_back_off.max_interval.ToNanoseconds() > 0
        assert set(retry.retry_on.split(",")) <= GRPC_RETRY_ON


@settings(max_examples=200, deadline=None)
@given(policies())
def test_any_valid_policy_translates_deterministically_and_acceptably(
    policy: BalancingPolicy,
) -> None:
    """Any valid policy gives byte-identical resources twice, and gRPC resources that pass
    grpc-go's checks; the gRPC cluster never carries a health check or slow start."""
    service = Service("web", ENDPOINTS, policy)
    for client in (ClientKind.ENVOY, ClientKind.GRPC):
        first = translator_for(client, TranslateOptions()).translate({"web": service}).snapshot
        again = translator_for(client, TranslateOptions()).translate({"web": service}).snapshot
        assert first.versions == again.versions
        for type_url, named in first.resources.items():
            for name, resource in named.items():
                assert resource.any_bytes == again.resources[type_url][name].any_bytes
    cluster = grpc_cluster(service)
    assert not cluster.health_checks
    _grpc_go_accepts(cluster, grpc_route_configuration(service))
    if policy.lb is LbPolicy.ROUND_ROBIN and policy.slow_start is not None:
        assert "slow_start_config" not in str(cluster)
