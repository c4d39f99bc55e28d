"""The resilience policies: ranges Envoy and gRPC accept, the JSON form round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.model import (
    RETRY_ON,
    BalancingPolicy,
    CircuitBreakers,
    HealthCheck,
    HealthCheckKind,
    LbPolicy,
    OutlierDetection,
    RetryPolicy,
    SlowStart,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10.0), ("1m", 60.0), ("1h", 3600.0), (3, 3.0), (0.5, 0.5)],
)
def test_durations_accept_numbers_and_units(text: object, seconds: float) -> None:
    """Durations are seconds, written as numbers or with a unit."""
    assert parse_duration("d", text) == seconds


@pytest.mark.parametrize("bad", ["10", "-1s", "1d", "", "s", True, None, float("nan"), -1])
def test_bad_durations_name_the_field(bad: object) -> None:
    """A duration that is not one is refused, naming the field."""
    with pytest.raises(ValidationError) as info:
        parse_duration("outlier_detection.interval", bad)
    assert info.value.field == "outlier_detection.interval"


def test_positive_durations_refuse_zero() -> None:
    """Envoy's intervals and check timeouts must be greater than zero."""
    with pytest.raises(ValidationError, match="at least 1ms"):
        OutlierDetection(interval=0)
    with pytest.raises(ValidationError, match="at least 1ms"):
        HealthCheck(timeout="0s")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"outlier_detection": {"max_ejection_percent": 101}},
            "outlier_detection.max_ejection_percent",
        ),
        (
            {"outlier_detection": {"success_rate": {"enforcing": -1}}},
            "outlier_detection.success_rate.enforcing",
        ),
        (
            {"outlier_detection": {"failure_percentage": {"threshold": 200}}},
            "outlier_detection.failure_percentage.threshold",
        ),
        ({"outlier_detection": {"nope": 1}}, "outlier_detection"),
        ({"outlier_detection": [1]}, "outlier_detection"),
        ({"health_check": {"kind": "udp"}}, "health_check.kind"),
        ({"health_check": {"path": "healthz"}}, "health_check.path"),
        ({"health_check": {"path": "/a b"}}, "health_check.path"),
        ({"health_check": {"healthy_threshold": 0}}, "health_check.healthy_threshold"),
        ({"health_check": {"control_plane": "yes"}}, "health_check.control_plane"),
        ({"slow_start": {}}, "slow_start.window"),
        ({"slow_start": {"window": 10, "aggression": 0}}, "slow_start.aggression"),
        (
            {"slow_start": {"window": 10, "min_weight_percent": 101}},
            "slow_start.min_weight_percent",
        ),
        ({"circuit_breakers": {"max_requests": -1}}, "circuit_breakers.max_requests"),
        ({"circuit_breakers": {"max_retries": 2**32}}, "circuit_breakers.max_retries"),
        ({"retries": {"retry_on": []}}, "retries.retry_on"),
        ({"retries": {"retry_on": ["5xx", "teapot"]}}, "retries.retry_on"),
        ({"retries": {"backoff_base": 1, "backoff_max": 0.5}}, "retries.backoff_max"),
        ({"timeout": "soon"}, "timeout"),
        ({"lb": "ring_hash", "hash_balance_factor": 99}, "hash_balance_factor"),
        ({"lb": "round_robin", "hash_balance_factor": 150}, "hash_balance_factor"),
        ({"lb": "random", "slow_start": {"window": 5}}, "slow_start"),
    ],
)
def test_bad_policies_name_the_dotted_field(data: dict[str, Any], field: str) -> None:
    """Every refusal names the exact field, however deep."""
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(**data)
    assert info.value.field == field


def test_defaults_are_envoys() -> None:
    """Unset fields take Envoy's defaults, so an empty mapping means 'on, as Envoy does it'."""
    policy = BalancingPolicy(outlier_detection={}, retries={}, circuit_breakers={})
    assert policy.outlier_detection == OutlierDetection(
        consecutive_5xx=5, interval=10.0, base_ejection_time=30.0, max_ejection_percent=10
    )
    assert policy.retries == RetryPolicy(retry_on=("5xx",), num_retries=1)
    assert policy.retries.effective_backoff_max == pytest.approx(0.25)
    assert policy.circuit_breakers == CircuitBreakers()
    assert BalancingPolicy().outlier_detection is None


def test_retry_on_is_canonical() -> None:
    """The same set of conditions in any order, or as a comma list, is one policy."""
    a = RetryPolicy(retry_on=("reset", "5xx", "reset"))
    b = RetryPolicy(retry_on="5xx, reset")  # type: ignore[arg-type]
    assert a == b
    assert a.retry_on == ("5xx", "reset")


_outlier = st.builds(
    OutlierDetection,
    consecutive_5xx=st.integers(0, 2**32 - 1),
    interval=st.floats(0.001, 1e6),
    max_ejection_percent=st.integers(0, 100),
    success_rate=st.none() | st.builds(dict),
)
_health = st.builds(
    HealthCheck,
    kind=st.sampled_from(list(HealthCheckKind)),
    interval=st.floats(0.001, 1e4),
    healthy_threshold=st.integers(1, 1000),
    control_plane=st.booleans(),
)
_retries = st.builds(
    RetryPolicy,
    retry_on=st.lists(st.sampled_from(sorted(RETRY_ON)), min_size=1).map(tuple),
    num_retries=st.integers(0, 1000),
    per_try_timeout=st.none() | st.floats(0.001, 1e4),
)


@given(
    lb=st.sampled_from([LbPolicy.ROUND_ROBIN, LbPolicy.LEAST_REQUEST]),
    outlier=st.none() | _outlier,
    health=st.none() | _health,
    retries=st.none() | _retries,
    slow=st.none() | st.builds(SlowStart, window=st.floats(0.001, 1e5)),
    timeout=st.none() | st.floats(0, 1e6),
)
def test_json_form_round_trips(
    *,
    lb: LbPolicy,
    outlier: OutlierDetection | None,
    health: HealthCheck | None,
    retries: RetryPolicy | None,
    slow: SlowStart | None,
    timeout: float | None,
) -> None:
    """What is stored (JSON) reads back as the same policy."""
    policy = BalancingPolicy(
        lb=lb,
        outlier_detection=outlier,
        health_check=health,
        retries=retries,
        slow_start=slow,
        timeout=timeout,
    )
    text = json.dumps(policy.to_mapping())
    data = json.loads(text)
    data["hash_on"] = ()
    assert BalancingPolicy(**data) == policy


@given(
    st.dictionaries(
        st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8), max_size=4
    )
)
def test_arbitrary_mappings_build_or_refuse_cleanly(data: dict[str, Any]) -> None:
    """Any mapping either builds a policy or is refused with a ValidationError, never else."""
    for name in ("outlier_detection", "health_check", "slow_start", "circuit_breakers", "retries"):
        try:
            policy = BalancingPolicy(lb=LbPolicy.ROUND_ROBIN, **{name: data})
        except ValidationError as exc:
            field = exc.field
        else:
            field = name
            assert getattr(policy, name) is not None
        assert field.startswith(name)
