"""Resilience policies → the Cluster and route fields Envoy and gRPC read.

| policy              | Envoy                                    | proxyless gRPC               |
|---------------------|------------------------------------------|------------------------------|
| outlier_detection   | Cluster `outlier_detection`, every kind  | success rate, failure % (A50)|
| health_check        | Cluster `health_checks` HTTP / gRPC / TCP| not sent (checks nothing)    |
| slow_start          | round_robin / least_request slow start   | not sent                     |
| circuit_breakers    | `circuit_breakers` (DEFAULT priority)    | `max_requests` only (A32)    |
| retries             | route `retry_policy` (+ previous_hosts)  | gRPC status names only (A44) |
| timeout             | route `timeout` (0 = none)               | `max_stream_duration` (A31)  |
| hash_balance_factor | ring / maglev consistent-hashing config  | not sent                     |

An Envoy cluster with outlier detection or a health check also gets
`common_lb_config.update_merge_window` 0, so that an ejection reaches the load balancers at
once (`envoy_cluster_resilience`).

What gRPC ignores or approximates is said by `resilience_notes` (logged, and shown as a
node's `policy_notes`); nothing here is sent to a gRPC client that it would NACK: grpc-go
refuses `num_retries` 0 and a zero backoff, so a policy without retries sends none.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.load_balancing_policies.common.v3 import common_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.v3 import http_pb2
from google.protobuf import any_pb2, duration_pb2

from xdscp.model import (
    GRPC_RETRY_ON,
    BalancingPolicy,
    CircuitBreakers,
    FailurePercentageEjection,
    HealthCheck,
    HealthCheckKind,
    OutlierDetection,
    RetryPolicy,
    SlowStart,
    SuccessRateEjection,
    UpstreamProtocol,
)

GRPC_MAX_ATTEMPTS = 5  # gRPC caps attempts (the first try and its retries) at 5
SLOW_START_RUNTIME_KEY = "xdscp.slow_start.aggression"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
_PREVIOUS_HOSTS_CONFIG = any_pb2.Any()  # the same bytes for every route: packed once
_PREVIOUS_HOSTS_CONFIG.Pack(previous_hosts_pb2.PreviousHostsPredicate(), deterministic=True)


def duration(seconds: float) -> Any:
    """A protobuf Duration of `seconds`, to the nanosecond (deterministic for equal inputs)."""
    nanos = round(seconds * 1_000_000_000)
    return duration_pb2.Duration(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def outlier_detection(policy: OutlierDetection, *, grpc: bool = False) -> Any:
    """The Cluster's OutlierDetection. Every detector not asked for is switched off
    (`enforcing_* = 0`): Envoy and gRPC would otherwise run success-rate ejection by default.
    For gRPC the consecutive-error detectors and `always_eject_one_host` are left out (it
    implements none of them; A50 lets its first ejection through anyway)."""
    od = outlier_detection_pb2.OutlierDetection()
    od.interval.CopyFrom(duration(policy.interval))
    od.base_ejection_time.CopyFrom(duration(policy.base_ejection_time))
    od.max_ejection_percent.value = policy.max_ejection_percent
    if not grpc:
        for name in ("consecutive_5xx", "consecutive_gateway_failure"):
            errors = getattr(policy, name)
            getattr(od, name).value = errors
            getattr(od, f"enforcing_{name}").value = 100 if errors else 0
        if policy.always_eject_one_host:  # set only when asked: other clusters' bytes unchanged
            od.always_eject_one_host.value = True
    _ejection(od, "success_rate", policy.success_rate)
    _ejection(od, "failure_percentage", policy.failure_percentage)
    return od


def _ejection(
    od: Any, detector: str, ejection: SuccessRateEjection | FailurePercentageEjection | None
) -> None:
    """One statistical detector: `enforcing_<detector>` (0 when not asked for), and each other
    field of its policy as `<detector>_<field>`."""
    getattr(od, f"enforcing_{detector}").value = ejection.enforcing if ejection else 0
    if ejection is None:
        return
    for f in fields(ejection):
        if f.name != "enforcing":
            getattr(od, f"{detector}_{f.name}").value = getattr(ejection, f.name)


def health_check(check: HealthCheck, upstream: UpstreamProtocol) -> Any:
    """One Envoy active health check, every `interval` whether or not the cluster has had
    traffic (`no_traffic_interval` = interval; Envoy's default, 60 s, would leave a backend
    that fails before the first request unnoticed for a minute)."""
    hc = health_check_pb2.HealthCheck()
    hc.timeout.CopyFrom(duration(check.timeout))
    hc.interval.CopyFrom(duration(check.interval))
    hc.no_traffic_interval.CopyFrom(duration(check.interval))
    if check.jitter:
        hc.interval_jitter.CopyFrom(duration(check.jitter))
    hc.healthy_threshold.value = check.healthy_threshold
    hc.unhealthy_threshold.value = check.unhealthy_threshold
    match check.kind:
        case HealthCheckKind.HTTP:
            hc.http_health_check.path = check.path
            if upstream is UpstreamProtocol.HTTP2:
                hc.http_health_check.codec_client_type = http_pb2.HTTP2
        case HealthCheckKind.GRPC:
            hc.grpc_health_check.service_name = check.service_name
        case HealthCheckKind.TCP:
            hc.tcp_health_check.SetInParent()
    return hc


def circuit_breakers(limits: CircuitBreakers, *, grpc: bool = False) -> Any:
    """Thresholds for the DEFAULT priority (unset limits keep the client's default)."""
    breakers = circuit_breaker_pb2.CircuitBreakers()
    names = ("max_requests",) if grpc else (
        "max_connections", "max_pending_requests", "max_requests", "max_retries",
    )  # fmt: skip
    threshold = breakers.thresholds.add(priority=base_pb2.DEFAULT)
    for name in names:
        value = getattr(limits, name)
        if value is not None:
            getattr(threshold, name).value = value
    return breakers


def slow_start_config(slow_start: SlowStart) -> Any:
    """The SlowStartConfig of the typed round_robin / least_request policy."""
    config = common_pb2.SlowStartConfig()
    config.slow_start_window.CopyFrom(duration(slow_start.window))
    config.aggression.default_value = slow_start.aggression
    config.aggression.runtime_key = SLOW_START_RUNTIME_KEY
    config.min_weight_percent.value = slow_start.min_weight_percent
    return config


def _backoff(retries: RetryPolicy, policy: Any) -> None:
    policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff_base))
    policy.retry_back_off.max_interval.CopyFrom(duration(retries.effective_backoff_max))


def envoy_retry_policy(retries: RetryPolicy) -> Any:
    """Envoy's route RetryPolicy; a retry goes to another host than the ones that failed."""
    policy = route_components_pb2.RetryPolicy(retry_on=",".join(retries.retry_on))
    policy.num_retries.value = retries.num_retries
    if retries.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    _backoff(retries, policy)
    predicate = policy.retry_host_predicate.add(name=PREVIOUS_HOSTS)
    predicate.typed_config.CopyFrom(_PREVIOUS_HOSTS_CONFIG)
    policy.host_selection_retry_max_attempts = 3
    return policy


def grpc_retry_policy(retries: RetryPolicy) -> Any | None:
    """gRPC's route RetryPolicy (A44), or None when gRPC would not retry at all: no gRPC
    status in `retry_on`, or `num_retries` 0 (which grpc-go NACKs)."""
    codes = [name for name in retries.retry_on if name in GRPC_RETRY_ON]
    if not codes or retries.num_retries == 0:
        return None
    policy = route_components_pb2.RetryPolicy(retry_on=",".join(codes))
    policy.num_retries.value = min(retries.num_retries, GRPC_MAX_ATTEMPTS - 1)
    _backoff(retries, policy)
    return policy


def envoy_route_action(action: Any, policy: BalancingPolicy) -> None:
    """Set the route's retry policy and timeout on `action` (Envoy)."""
    if policy.retries is not None and policy.retries.num_retries > 0:
        action.retry_policy.CopyFrom(envoy_retry_policy(policy.retries))
    if policy.timeout is not None:
        action.timeout.CopyFrom(duration(policy.timeout))


def grpc_route_action(action: Any, policy: BalancingPolicy) -> None:
    """Set the route's retry policy and deadline cap on `action` (gRPC: A44, A31)."""
    if policy.retries is not None:
        retry = grpc_retry_policy(policy.retries)
        if retry is not None:
            action.retry_policy.CopyFrom(retry)
    if policy.timeout:  # 0 (no timeout) is the same as unset for gRPC
        action.max_stream_duration.max_stream_duration.CopyFrom(duration(policy.timeout))


def envoy_cluster_resilience(cluster: Any, policy: BalancingPolicy) -> None:
    """Set outlier detection, health checks and circuit breakers on an Envoy Cluster.

    A cluster whose hosts can be ejected or fail a check has no update merge window
    (`common_lb_config.update_merge_window` 0). With Envoy's default, 1 s, a host's health
    change within 1 s of the cluster's previous one reaches the workers' load balancers only
    when that second ends (`ClusterManagerImpl::scheduleUpdate`): a host ejected just after
    another host came back kept its place in the rotation until then, though /clusters
    already flagged it."""
    if policy.outlier_detection is not None or policy.health_check is not None:
        cluster.common_lb_config.update_merge_window.CopyFrom(duration(0))
    if policy.outlier_detection is not None:
        cluster.outlier_detection.CopyFrom(outlier_detection(policy.outlier_detection))
    if policy.health_check is not None:
        cluster.health_checks.append(health_check(policy.health_check, policy.upstream_protocol))
    if policy.circuit_breakers is not None:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(policy.circuit_breakers))


def grpc_cluster_resilience(cluster: Any, policy: BalancingPolicy) -> None:
    """Set what gRPC reads on its Cluster: outlier detection (A50) and max_requests (A32)."""
    od = policy.outlier_detection
    if od is not None and (od.success_rate is not None or od.failure_percentage is not None):
        cluster.outlier_detection.CopyFrom(outlier_detection(od, grpc=True))
    limits = policy.circuit_breakers
    if limits is not None and limits.max_requests is not None:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(limits, grpc=True))


def resilience_notes(policy: BalancingPolicy) -> list[str]:
    """What a gRPC client does differently from the resilience policy (logs, policy_notes)."""
    notes = []
    od = policy.outlier_detection
    if od is not None and (od.consecutive_5xx or od.consecutive_gateway_failure):
        notes.append(
            "outlier_detection: gRPC ejects by success_rate and failure_percentage only; "
            "consecutive_5xx / consecutive_gateway_failure are Envoy's"
        )
    if od is not None and od.always_eject_one_host:
        notes.append(
            "outlier_detection: gRPC has no always_eject_one_host; it ejects while fewer than"
            " max_ejection_percent % of its endpoints are ejected, so its first ejection"
            " happens whatever the endpoint count (none when max_ejection_percent is 0)"
        )
    if policy.health_check is not None and not policy.health_check.control_plane:
        notes.append(
            "health_check: gRPC clients do no active health checks "
            "(set health_check.control_plane: true to have xdscp check for them)"
        )
    if policy.slow_start is not None:
        notes.append("slow_start: gRPC clients give a new endpoint its full share at once")
    if policy.hash_balance_factor is not None:
        notes.append("hash_balance_factor: gRPC's ring hash has no bounded load")
    limits = policy.circuit_breakers
    if limits is not None and any(
        v is not None for v in (limits.max_connections, limits.max_pending_requests,
                                limits.max_retries)
    ):  # fmt: skip
        notes.append("circuit_breakers: gRPC honours max_requests only")
    notes.extend(_retry_notes(policy.retries))
    return notes


def _retry_notes(retries: RetryPolicy | None) -> list[str]:
    if retries is None:
        return []
    notes = []
    ignored = [name for name in retries.retry_on if name not in GRPC_RETRY_ON]
    if ignored:
        notes.append(
            f"retries: gRPC retries on gRPC status names only; {', '.join(ignored)} ignored"
        )
    if grpc_retry_policy(retries) is None and retries.num_retries > 0:
        notes.append("retries: no gRPC status in retry_on, gRPC clients do not retry")
    if retries.num_retries + 1 > GRPC_MAX_ATTEMPTS:
        notes.append(f"retries: gRPC caps attempts at {GRPC_MAX_ATTEMPTS} (num_retries 4)")
    if retries.per_try_timeout is not None:
        notes.append("retries: gRPC has no per_try_timeout (the call's deadline bounds all tries)")
    return notes
