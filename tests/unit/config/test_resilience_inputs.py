"""Resilience policies enter through every input with the same precise errors: the serve
configuration (file:line), the static services file, the etcd policy JSON, DNS declarations
and `xdscp policy set` flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdscp.cli.policy_flags import flag_for, resilience_fields
from xdscp.cli.registry import policy_group
from xdscp.config import load_config
from xdscp.dns import load_dns_config
from xdscp.errors import ConfigFieldError, ValidationError
from xdscp.model import BalancingPolicy
from xdscp.registry.schema import parse_policy, policy_value
from xdscp.sources.static import load_services

CONFIG = """\
sources:
  static:
    services:
      web:
        endpoints: [{{address: 10.0.0.1, port: 80}}]
        policy:
          lb: round_robin
          outlier_detection:
            consecutive_5xx: 3
            failure_percentage:
              {key}: {value}
          retries: {{retry_on: [5xx, unavailable], num_retries: 2}}
          timeout: 3s
"""


def _config(tmp_path: Path, key: str, value: object) -> Any:
    path = tmp_path / "xdscp.yaml"
    path.write_text(CONFIG.format(key=key, value=value))
    return load_config(path, {})


def test_config_file_reads_nested_policies(tmp_path: Path) -> None:
    """A nested policy in the serve configuration builds the model's policy."""
    config = _config(tmp_path, "threshold", 60)
    policy = config.static_services["web"].policy
    assert policy.outlier_detection.failure_percentage.threshold == 60
    assert policy.retries.num_retries == 2
    assert policy.timeout == 3.0


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("threshold", 150, "xdscp.yaml:11: sources.static.services.web.policy.outlier_detection"
         ".failure_percentage.threshold: must be in [0, 100], got 150"),
        ("treshold", 15, "xdscp.yaml:11: sources.static.services.web.policy.outlier_detection"
         ".failure_percentage: unknown field 'treshold', did you mean 'threshold'?"),
    ],
)  # fmt: skip
def test_config_file_errors_name_line_and_field(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    """Bad values and unknown keys deep in a policy are reported at their own line."""
    with pytest.raises(ConfigFieldError) as info:
        _config(tmp_path, key, value)
    assert str(info.value).endswith(expected)


def test_config_file_refuses_a_part_that_is_not_a_mapping(tmp_path: Path) -> None:
    """`retries: 3` is an error at the retries line."""
    path = tmp_path / "xdscp.yaml"
    text = CONFIG.format(key="threshold", value=50).replace(
        "retries: {retry_on: [5xx, unavailable], num_retries: 2}", "retries: 3"
    )
    path.write_text(text)
    with pytest.raises(ConfigFieldError, match=r"xdscp.yaml:12: .*policy.retries: must be a"):
        load_config(path, {})


def test_static_services_file_names_the_dotted_field() -> None:
    """The `--static` services file reports the line, the service and the nested field."""
    text = "services:\n  web:\n    policy: {health_check: {kind: http, interval: 0s}}\n"
    with pytest.raises(ConfigFieldError) as info:
        load_services(text, "services.yaml")
    assert info.value.origin == "services.yaml:3"
    assert info.value.field == "services.web.policy.health_check.interval"
    assert info.value.message == "must be at least 1ms, got 0.0"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"retries": 3}, "policy.retries", "must be a mapping of fields, got 3"),
        ({"retries": {"retry_on": "5xx,bogus"}}, "policy.retries.retry_on", "unknown ['bogus']"),
        ({"slow_start": {"window": "10s"}, "lb": "maglev"}, "policy.slow_start", "round robin"),
        ({"hash_balance_factor": 99, "lb": "ring_hash"}, "policy.hash_balance_factor", "[100,"),
    ],
)
def test_etcd_policy_json_errors(raw: dict[str, Any], field: str, message: str) -> None:
    """The etcd policy value: the dotted field, and the message once (not repeated)."""
    with pytest.raises(ValidationError) as info:
        parse_policy(json.dumps(raw).encode())
    assert info.value.field == field
    assert message in info.value.message
    assert not info.value.message.startswith(field.removeprefix("policy."))


def test_etcd_policy_round_trips() -> None:
    """What `policy set` stores reads back as the same policy."""
    policy = BalancingPolicy(
        outlier_detection={"failure_percentage": {"threshold": 50}},  # type: ignore[arg-type]
        retries={"retry_on": ["unavailable"]},  # type: ignore[arg-type]
        timeout=2.5,
    )
    assert parse_policy(policy_value(policy)) == policy


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded machine
@given(
    st.dictionaries(
        st.sampled_from(
            ["outlier_detection", "health_check", "slow_start", "circuit_breakers", "retries",
             "timeout", "hash_balance_factor", "lb"]
        ),
        _json,
    )
)  # fmt: skip
def test_any_policy_json_builds_or_is_refused_cleanly(data: dict[str, Any]) -> None:
    """Arbitrary JSON in the resilience fields gives a policy or a ValidationError naming a
    policy field, never another exception."""
    outcome: BalancingPolicy | ValidationError
    try:
        outcome = parse_policy(json.dumps(data).encode())
    except ValidationError as exc:
        outcome = exc
    assert isinstance(outcome, BalancingPolicy) or outcome.field.startswith("policy")


def test_dns_declaration_reads_nested_policies() -> None:
    """A DNS declaration takes the same policy form, errors prefixed by the declaration."""
    service = {"service": "web", "dns_name": "web.example", "port": 80}
    good = load_dns_config(
        {"services": [{**service, "policy": {"retries": {"num_retries": 3}, "timeout": "2s"}}]}
    )
    assert good.services[0].policy.retries.num_retries == 3
    with pytest.raises(ValidationError) as info:
        load_dns_config(
            {"services": [{**service, "policy": {"outlier_detection": {"intervl": "1s"}}}]}
        )
    assert info.value.field == "dns.services[0].policy.outlier_detection"
    assert "unknown fields ['intervl']" in info.value.message


def test_policy_flags_merge_json_parts_and_short_flags() -> None:
    """JSON parts and short flags make one nested mapping; short flags win."""
    params: dict[str, Any] = {
        "retries": '{"num_retries": 5, "retry_on": ["reset"]}',
        "num_retries": 2,
        "health_check_kind": "grpc:my.Service",
        "failure_percentage": 70,
        "timeout": "1s",
        "lb": "round_robin",
    }
    fields = resilience_fields(params)
    assert params == {"lb": "round_robin"}
    assert fields["retries"] == {"num_retries": 2, "retry_on": ["reset"]}
    assert fields["health_check"] == {"kind": "grpc", "service_name": "my.Service"}
    assert fields["outlier_detection"] == {"failure_percentage": {"threshold": 70}}
    assert fields["timeout"] == "1s"


@pytest.mark.parametrize(
    ("field", "flag"),
    [
        ("retries.num_retries", "--num-retries"),
        ("outlier_detection.interval", "--ejection-interval"),
        ("outlier_detection.failure_percentage.threshold", "--failure-percentage"),
        ("outlier_detection.success_rate.enforcing", "--outlier-detection"),
        ("health_check.kind", "--health-check"),
        ("timeout", "--timeout"),
    ],
)
def test_errors_name_the_flag(field: str, flag: str) -> None:
    """A policy error is reported against the flag that set the field."""
    assert flag_for(field) == flag


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--slow-start-window", "0s"], "--slow-start-window"),
        (["--retries", "[1]"], "must be a JSON object"),
        (["--health-check", "tcp:/x"], "tcp takes no argument"),
        (
            ["--health-check", "htp:/x"],
            "unknown health check kind 'htp': expected one of http,"
            " grpc, tcp, did you mean 'http'?",
        ),
        (
            ["--lb", "maglev", "--slow-start-window", "5s"],
            "slow_start: is used by the round robins",
        ),
    ],
)
def test_policy_set_refuses_bad_flags_before_etcd(args: list[str], expected: str) -> None:
    """Bad resilience flags are refused before any etcd connection (none runs here)."""
    argv = ["set", "web", *(["--lb", "round_robin"] if "--lb" not in args else []), *args]
    result = CliRunner().invoke(policy_group, [*argv, "--etcd", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert expected in result.output
