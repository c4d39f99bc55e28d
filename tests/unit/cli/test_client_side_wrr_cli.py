"""`client_side_weighted_round_robin` on the command line: `policy set`'s flags (merged into
the stored settings, errors naming the flag) and `simulate`'s prediction from capacities."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cli import main
from xdscp.cli.policy_edit import changes, merge
from xdscp.cli.policy_flags import JSON_FLAGS, SHORT_FLAGS, policy_patch
from xdscp.cli.registry import policy_group
from xdscp.cli.simulate_orca import parse_capacity
from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, ClientSideWrr, LbPolicy

CSWRR = "client_side_weighted_round_robin"
ENDPOINTS = (
    "--endpoint",
    "10.0.0.1:80",
    "--endpoint",
    "10.0.0.2:80:9",
    "--endpoint",
    "10.0.0.3:80",
)
CAPACITIES = ("--capacity", "10.0.0.1:80=100", "--capacity", "10.0.0.2:80=200",
              "--capacity", "10.0.0.3:80=400")  # fmt: skip


def _patch(**flags: Any) -> Any:
    params: dict[str, Any] = dict.fromkeys([*SHORT_FLAGS, *JSON_FLAGS]) | flags
    return policy_patch(params)


def test_flags_set_the_settings() -> None:
    """Each short flag sets its setting; durations take units; metrics are comma-separated."""
    policy = merge(None, _patch(
        lb=CSWRR, blackout_period="1s", weight_expiration_period="1m",
        weight_update_period="250ms", error_utilization_penalty=0.5,
        utilization_metrics="cpu_utilization,named_metrics.cost", oob_load_report=True,
        oob_reporting_period="5s",
    ))  # fmt: skip
    assert policy.client_side_wrr == ClientSideWrr(
        blackout_period=1.0, weight_expiration_period=60.0, weight_update_period=0.25,
        error_utilization_penalty=0.5,
        metric_names_for_computing_utilization=("cpu_utilization", "named_metrics.cost"),
        enable_oob_load_report=True, oob_reporting_period=5.0,
    )  # fmt: skip


def test_a_flag_changes_one_setting_of_the_stored_policy() -> None:
    """`--oob-load-report` alone keeps the stored blackout (and the stored --lb)."""
    stored = merge(None, _patch(lb=CSWRR, blackout_period="2s"))
    merged = merge(stored, _patch(oob_load_report=True))
    assert merged.client_side_wrr is not None
    assert merged.client_side_wrr.blackout_period == 2.0
    assert merged.client_side_wrr.enable_oob_load_report is True


def test_another_lb_drops_the_stored_settings() -> None:
    """`--lb round_robin` after client-side WRR: the settings go (they belong to it alone)."""
    stored = merge(None, _patch(lb=CSWRR, blackout_period="2s"))
    merged = merge(stored, _patch(lb="round_robin"))
    assert merged == BalancingPolicy(lb=LbPolicy.ROUND_ROBIN)


@pytest.mark.parametrize(
    ("args", "flag", "message"),
    [
        (["--lb", CSWRR, "--weight-update-period", "50ms"], "--weight-update-period",
         "client_side_wrr.weight_update_period: must be at least 100ms"),
        (["--lb", CSWRR, "--error-utilization-penalty", "-1"], "--error-utilization-penalty",
         "client_side_wrr.error_utilization_penalty: must be in [0, 1000000.0]"),
        (["--lb", CSWRR, "--utilization-metrics", "qps"], "--utilization-metrics",
         "client_side_wrr.metric_names_for_computing_utilization"),
        (["--lb", "round_robin", "--blackout-period", "1s"], "--client-side-wrr",
         "client_side_wrr: is used by client_side_weighted_round_robin only, not round_robin"),
    ],
)  # fmt: skip
def test_bad_flags_are_refused_before_etcd(args: list[str], flag: str, message: str) -> None:
    """A bad setting is refused naming the flag and the field, before any etcd connection."""
    result = CliRunner().invoke(policy_group, ["set", "web", *args, "--etcd", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert message in " ".join(result.output.split())


def _rows(output: str) -> dict[str, float]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and ":" in cells[1]:
            rows[cells[1]] = float(cells[3])
    return rows


def _simulate(*args: str) -> str:
    result = CliRunner().invoke(main, ["simulate", "--policy", CSWRR, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _text(output: str) -> str:
    return " ".join(output.split())


def test_envoy_converges_to_the_capacities_shares_whatever_the_weights() -> None:
    """Capacities 1 : 2 : 4 give 14.3 / 28.6 / 57.1 % (the registered 1 : 9 : 1 do not
    count), after the blackout and one update: 11 s with the defaults."""
    output = _simulate(*ENDPOINTS, *CAPACITIES, "--requests", "7000")
    assert list(_rows(output).values()) == pytest.approx([14.3, 28.6, 57.1], abs=0.1)
    assert "reached 11 s after the first requests: blackout 10 s" in _text(output)


def test_grpc_converges_to_the_same_shares() -> None:
    """gRPC's picks over the same weights: the same shares, within sampling."""
    output = _simulate(
        *ENDPOINTS, *CAPACITIES, "--client", "grpc", "--requests", "20000", "--seed", "7"
    )
    shares = list(_rows(output).values())
    assert shares == pytest.approx([14.3, 28.6, 57.1], abs=1.5)


def test_file_capacities_and_out_of_band_settings(tmp_path: Path) -> None:
    """`capacities:` in the file; out-of-band reports every 2 s with a 1 s blackout: the
    first report at 2 s, the weights usable at 3 s."""
    path = tmp_path / "sim.yaml"
    path.write_text(
        "policy:\n  lb: client_side_weighted_round_robin\n  client_side_wrr:\n"
        "    {blackout_period: 1s, enable_oob_load_report: true, oob_reporting_period: 2s}\n"
        'endpoints: ["10.0.0.1:80", "10.0.0.2:80"]\n'
        'capacities: {"10.0.0.1:80": 300, "10.0.0.2:80": 100}\nrequests: 400\n'
    )
    result = CliRunner().invoke(main, ["simulate", "--file", str(path)])
    assert result.exit_code == 0, result.output
    # the scheduler's start is random (no --seed): a request either way
    assert list(_rows(result.output).values()) == pytest.approx([75.0, 25.0], abs=0.3)
    assert "reached 3 s after the first requests" in _text(result.output)


def test_without_capacities_every_endpoint_weighs_the_same() -> None:
    """No capacities: equal shares until reports arrive, and a hint to give them."""
    output = _simulate(*ENDPOINTS, "--requests", "300")
    assert _rows(output) == {"10.0.0.1:80": 33.3, "10.0.0.2:80": 33.3, "10.0.0.3:80": 33.3}
    assert "give --capacity IP:PORT=RPS" in _text(output)


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        (("--capacity", "10.0.0.1:80=100"), "give every endpoint a capacity"),
        (("--capacity", "10.0.0.9:80=1", *CAPACITIES), "10.0.0.9:80: not an endpoint"),
        (("--capacity", "10.0.0.1:80=0"), "must be requests/s above 0, got '0'"),
        (("--capacity", "10.0.0.1:80"), "expected IP:PORT=RPS"),
    ],
)
def test_bad_capacities_are_refused(capacity: tuple[str, ...], message: str) -> None:
    """A missing, unknown, non-positive or malformed capacity: a clear error."""
    result = CliRunner().invoke(main, ["simulate", "--policy", CSWRR, *ENDPOINTS, *capacity])
    assert result.exit_code == 1
    assert message in result.output


def test_policy_set_says_the_settings_came_with_the_policy() -> None:
    """`--lb client_side_weighted_round_robin` alone: the settings part appears, at its
    defaults, and is said so; a later flag shows as one field's change."""
    before = BalancingPolicy()
    after = merge(before, _patch(lb=CSWRR))
    assert changes(before, after) == [
        f"lb: round_robin -> {CSWRR}",
        "client_side_wrr: unset -> defaults",
    ]
    later = merge(after, _patch(blackout_period="1s"))
    assert changes(after, later) == ["client_side_wrr.blackout_period: 10.0 -> 1.0"]


@given(st.floats(min_value=1e-9, max_value=1e12))
def test_any_positive_capacity_is_taken(capacity: float) -> None:
    """Any finite requests/s above 0, as a number or as text (a flag's form)."""
    assert parse_capacity(capacity) == capacity
    assert parse_capacity(repr(capacity)) == capacity


@given(st.floats(max_value=0) | st.sampled_from([math.nan, math.inf, -math.inf]) | st.text())
def test_anything_else_is_refused_naming_the_field(value: object) -> None:
    """0, negatives, NaN, infinities and text that is no number: `capacity` is named."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number > 0:
        return  # text such as "5" is a capacity
    with pytest.raises(ValidationError) as info:
        parse_capacity(value)
    assert info.value.field == "capacity"


def test_grpc_picks_a_locality_by_its_endpoint_count_then_weighs_within() -> None:
    """Capacities 100, 200 in zone a and 400 in zone b: Envoy 1/7, 2/7, 4/7; gRPC gives zone a
    2/3 (two endpoints of three) split 1 : 2, and zone b 1/3."""
    zoned = ("--endpoint", "10.0.0.1:80:1:a", "--endpoint", "10.0.0.2:80:1:a",
             "--endpoint", "10.0.0.3:80:1:b")  # fmt: skip
    envoy = _rows(_simulate(*zoned, *CAPACITIES, "--requests", "7000"))
    assert list(envoy.values()) == pytest.approx([14.3, 28.6, 57.1], abs=0.1)
    grpc = _rows(
        _simulate(*zoned, *CAPACITIES, "--client", "grpc", "--requests", "20000", "--seed", "7")
    )
    assert list(grpc.values()) == pytest.approx([22.2, 44.4, 33.3], abs=1.5)
