"""Hypothesis strategies: every valid resilience policy, on every balancing policy it fits."""

from __future__ import annotations

from hypothesis import strategies as st

from xdscp.model import (
    RETRY_ON,
    BalancingPolicy,
    CircuitBreakers,
    FailurePercentageEjection,
    HashOn,
    HealthCheck,
    HealthCheckKind,
    LbPolicy,
    OutlierDetection,
    RetryPolicy,
    SlowStart,
    SuccessRateEjection,
    UpstreamProtocol,
)

U32 = 2**32 - 1
_seconds = st.floats(0.001, 1e5).map(lambda s: round(s, 3))
_percent = st.integers(0, 100)

success_rates = st.builds(
    SuccessRateEjection,
    stdev_factor=st.integers(0, U32),
    minimum_hosts=st.integers(0, U32),
    request_volume=st.integers(0, U32),
    enforcing=_percent,
)
failure_percentages = st.builds(
    FailurePercentageEjection,
    threshold=_percent,
    minimum_hosts=st.integers(0, U32),
    request_volume=st.integers(0, U32),
    enforcing=_percent,
)
outliers = st.builds(
    OutlierDetection,
    consecutive_5xx=st.integers(0, U32),
    consecutive_gateway_failure=st.integers(0, U32),
    success_rate=st.none() | success_rates,
    failure_percentage=st.none() | failure_percentages,
    interval=_seconds,
    base_ejection_time=_seconds,
    max_ejection_percent=_percent,
    always_eject_one_host=st.booleans(),
)
health_checks = st.builds(
    HealthCheck,
    kind=st.sampled_from(list(HealthCheckKind)),
    path=st.from_regex(r"/[a-z0-9/_-]{0,20}", fullmatch=True),
    service_name=st.from_regex(r"[a-z.]{0,20}", fullmatch=True),
    interval=_seconds,
    timeout=_seconds,
    healthy_threshold=st.integers(1, 1000),
    unhealthy_threshold=st.integers(1, 1000),
    jitter=st.floats(0, 100).map(lambda s: round(s, 3)),
    control_plane=st.booleans(),
)
breakers = st.builds(
    CircuitBreakers,
    **{
        name: st.none() | st.integers(0, U32)
        for name in ("max_connections", "max_pending_requests", "max_requests", "max_retries")
    },
)
retries = st.builds(
    RetryPolicy,
    retry_on=st.lists(st.sampled_from(sorted(RETRY_ON)), min_size=1).map(tuple),
    num_retries=st.integers(0, 1000),
    per_try_timeout=st.none() | _seconds,
    backoff_base=st.floats(0.001, 10).map(lambda s: round(s, 3)),
).flatmap(
    lambda r: st.sampled_from([None, r.backoff_base, r.backoff_base * 4]).map(
        lambda most: RetryPolicy(r.retry_on, r.num_retries, r.per_try_timeout, r.backoff_base, most)
    )
)
slow_starts = st.builds(
    SlowStart,
    window=_seconds,
    aggression=st.floats(0.01, 1000),
    min_weight_percent=st.floats(0, 100),
)


@st.composite
def policies(draw: st.DrawFn) -> BalancingPolicy:
    """A valid BalancingPolicy with any mix of resilience parts its `lb` allows."""
    lb = draw(st.sampled_from(list(LbPolicy)))
    hashing = lb in {LbPolicy.RING_HASH, LbPolicy.MAGLEV, LbPolicy.SOURCE_IP_HASH}
    slow = lb in {LbPolicy.ROUND_ROBIN, LbPolicy.WEIGHTED_ROUND_ROBIN, LbPolicy.LEAST_REQUEST}
    check = draw(st.none() | health_checks)
    http2 = draw(st.booleans()) or (check is not None and check.kind is HealthCheckKind.GRPC)
    return BalancingPolicy(
        lb=lb,
        hash_on=(HashOn.parse("header:x-key"),)
        if hashing and lb is not LbPolicy.SOURCE_IP_HASH
        else (),
        upstream_protocol=UpstreamProtocol.HTTP2 if http2 else UpstreamProtocol.HTTP1,
        outlier_detection=draw(st.none() | outliers),
        health_check=check,
        slow_start=draw(st.none() | slow_starts) if slow else None,
        circuit_breakers=draw(st.none() | breakers),
        retries=draw(st.none() | retries),
        timeout=draw(st.none() | st.just(0.0) | _seconds),
        hash_balance_factor=draw(st.none() | st.integers(100, U32)) if hashing else None,
    )
