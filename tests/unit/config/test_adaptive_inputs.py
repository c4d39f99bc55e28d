"""`adaptive_weights` enters through every input with precise errors: the model, the etcd
policy JSON, the static services file, the serve configuration and `xdscp policy set`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdscp.cli.policy_edit import PolicyPatch, changes, merge
from xdscp.cli.policy_flags import flag_for, policy_patch
from xdscp.cli.registry import policy_group
from xdscp.config import load_config
from xdscp.errors import ConfigFieldError, ValidationError
from xdscp.model import (
    ADAPTIVE_POLICIES,
    AdaptiveSettings,
    BalancingPolicy,
    Endpoint,
    LbPolicy,
    Service,
)
from xdscp.registry.schema import parse_policy, policy_value
from xdscp.sources.static import load_services
from xdscp.translate.grpc import grpc_warnings

# (field, lowest, highest) accepted
BOUNDS = [
    ("min_push_interval", 0.0, 3600.0),
    ("smoothing", 0.01, 1.0),
    ("max_step", 1.01, 100.0),
    ("floor", 0.0, 1.0),
    ("hysteresis", 0.0, 1.0),
    ("stale_after", 1.0, 86400.0),
    ("error_penalty", 0.0, 100.0),
]


@pytest.mark.parametrize(("field", "low", "high"), BOUNDS)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6))
def test_every_setting_is_taken_inside_its_range_and_refused_outside_by_name(
    field: str, low: float, high: float, value: float
) -> None:
    """Inside [low, high]: taken as is; outside, NaN or infinite: refused, naming the field."""
    inside = math.isfinite(value) and low <= value <= high
    if not inside:
        with pytest.raises(ValidationError) as info:
            AdaptiveSettings.from_mapping({field: value}, "adaptive_weights")
        assert info.value.field == f"adaptive_weights.{field}"
        return
    settings_ = AdaptiveSettings.from_mapping({field: value}, "adaptive_weights")
    assert getattr(settings_, field) == pytest.approx(float(value))


@pytest.mark.parametrize(("field", "low", "high"), BOUNDS)
def test_the_exact_bounds_are_taken(field: str, low: float, high: float) -> None:
    for value in (low, high):
        assert getattr(AdaptiveSettings(**{field: value}), field) == value
    for value in (math.nextafter(low, -math.inf), math.nextafter(high, math.inf)):
        with pytest.raises(ValidationError):
            AdaptiveSettings(**{field: value})


def test_durations_are_read_like_every_other_duration() -> None:
    settings_ = AdaptiveSettings.from_mapping(
        {"min_push_interval": "500ms", "stale_after": "2m"}, "adaptive_weights"
    )
    assert (settings_.min_push_interval, settings_.stale_after) == (0.5, 120.0)


def test_unknown_fields_are_refused_with_the_allowed_set() -> None:
    with pytest.raises(ValidationError) as info:
        AdaptiveSettings.from_mapping({"max_stepp": 3}, "adaptive_weights")
    assert info.value.field == "adaptive_weights"
    assert "unknown fields ['max_stepp']" in info.value.message
    assert "max_step" in info.value.message


@pytest.mark.parametrize("lb", list(LbPolicy))
def test_valid_for_every_weighted_policy_only(lb: LbPolicy) -> None:
    """Every policy whose clients honour endpoint weights; round_robin and random refused, and
    client_side_weighted_round_robin, whose clients weigh by their own reports."""
    if lb in ADAPTIVE_POLICIES:
        assert BalancingPolicy(lb=lb, adaptive_weights=AdaptiveSettings()).adaptive_weights
        return
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(lb=lb, adaptive_weights=AdaptiveSettings())
    assert info.value.field == "adaptive_weights"
    assert f"not {lb}" in info.value.message
    assert lb in {
        LbPolicy.ROUND_ROBIN,
        LbPolicy.RANDOM,
        LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN,
    }


def test_etcd_policy_round_trips_and_names_the_field() -> None:
    policy = BalancingPolicy(
        lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
        adaptive_weights={"min_push_interval": "5s", "floor": 0.1},  # type: ignore[arg-type]
    )
    assert parse_policy(policy_value(policy)) == policy
    raw = {"lb": "weighted_round_robin", "adaptive_weights": {"max_step": 1.0}}
    with pytest.raises(ValidationError) as info:
        parse_policy(json.dumps(raw).encode())
    assert info.value.field == "policy.adaptive_weights.max_step"
    assert info.value.message == "must be in [1.01, 100.0], got 1.0"


def test_static_file_reads_it_and_places_errors() -> None:
    good = (
        "services:\n  web:\n    endpoints: [{address: 10.0.0.1, port: 80}]\n"
        "    policy: {lb: maglev, adaptive_weights: {hysteresis: 0.2}}\n"
    )
    policy = load_services(good, "services.yaml")["web"].policy
    assert policy.adaptive_weights == AdaptiveSettings(hysteresis=0.2)
    bad = good.replace("hysteresis: 0.2", "hysteresis: -1")
    with pytest.raises(ConfigFieldError) as info:
        load_services(bad, "services.yaml")
    assert info.value.field == "services.web.policy.adaptive_weights.hysteresis"


def test_serve_configuration_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "xdscp.yaml"
    path.write_text(
        "sources:\n  static:\n    services:\n      web:\n"
        "        endpoints: [{address: 10.0.0.1, port: 80}]\n"
        "        policy:\n          lb: weighted_round_robin\n"
        "          adaptive_weights: {min_push_interval: 2s}\n"
    )
    config: Any = load_config(path, {})
    assert config.static_services["web"].policy.adaptive_weights.min_push_interval == 2.0


def test_policy_set_flags_turn_it_on_tune_it_and_off() -> None:
    stored = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN)
    on = merge(stored, policy_patch({"adaptive_on": True}))
    assert on.adaptive_weights == AdaptiveSettings()
    tuned = merge(on, policy_patch({"adaptive_min_push_interval": "3s", "adaptive_floor": 0.2}))
    assert tuned.adaptive_weights == AdaptiveSettings(min_push_interval=3.0, floor=0.2)
    assert sorted(changes(on, tuned)) == [
        "adaptive_weights.floor: 0.05 -> 0.2",
        "adaptive_weights.min_push_interval: 10.0 -> 3.0",
    ]
    off = merge(tuned, policy_patch({"adaptive_on": False}))
    assert off.adaptive_weights is None
    # --lb round_robin alone drops a stored adaptive part (it cannot be used there)
    assert merge(tuned, PolicyPatch({"lb": "round_robin"})).adaptive_weights is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--lb", "round_robin", "--adaptive-weights"], "--adaptive-weights"),
        (["--lb", "maglev", "--adaptive-max-step", "1"], "--adaptive-max-step"),
        (["--lb", "maglev", "--adaptive-stale-after", "soon"], "--adaptive-stale-after"),
    ],
)
def test_policy_set_refuses_bad_flags_before_etcd(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(policy_group, ["set", "web", *args, "--etcd", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_errors_name_the_flag() -> None:
    assert flag_for("adaptive_weights") == "--adaptive-weights"
    assert flag_for("adaptive_weights.max_step") == "--adaptive-max-step"
    assert flag_for("adaptive_weights.min_push_interval") == "--adaptive-min-push-interval"


@pytest.mark.parametrize(
    ("value", "taken"), [("0.5", 0.5), ("2", 2.0), ("0", None), ("-1", None), ("soon", None),
                         ("true", None), ("3601", None)],
)  # fmt: skip
def test_the_weigh_interval_is_read_from_serves_configuration(
    tmp_path: Path, value: str, taken: float | None
) -> None:
    path = tmp_path / "xdscp.yaml"
    path.write_text(f"xds:\n  weigh_interval: {value}\n")
    if taken is None:
        with pytest.raises(ConfigFieldError) as info:
            load_config(path, {})
        assert info.value.field == "xds.weigh_interval"
        return
    assert load_config(path, {}).serve.weigh_interval_s == taken


def test_grpc_is_told_least_request_ignores_the_computed_weights() -> None:
    """The one weighted policy whose gRPC clients ignore endpoint weights says so."""
    endpoint = Endpoint("10.0.0.1", 80)
    for lb, noted in ((LbPolicy.LEAST_REQUEST, True), (LbPolicy.WEIGHTED_ROUND_ROBIN, False)):
        policy = BalancingPolicy(lb=lb, adaptive_weights=AdaptiveSettings())
        notes = grpc_warnings(Service("web", (endpoint,), policy))
        assert any(n.startswith("adaptive_weights:") for n in notes) is noted


def test_a_files_endpoint_has_no_load_key() -> None:
    """A load is what a registrant reports of itself, refreshed: a file cannot declare one."""
    text = (
        "services:\n  web:\n"
        "    endpoints: [{address: 10.0.0.1, port: 80, load: {utilization: 0.5}}]\n"
    )
    with pytest.raises(ConfigFieldError, match="unknown field 'load'"):
        load_services(text, "services.yaml")
