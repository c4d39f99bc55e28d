"""`client_side_weighted_round_robin` and its settings (`ClientSideWrr`): A58's / Envoy's
defaults, each range at its edges, errors naming the dotted field, and the round trip through
every form a policy is stored or read in (mapping, etcd value, services file)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cli.policy_edit import build_policy
from xdscp.errors import ConfigFieldError, ValidationError
from xdscp.model import BalancingPolicy, ClientSideWrr, Endpoint, LbPolicy, Service
from xdscp.registry import parse_policy, policy_value
from xdscp.sources.services_doc import load_services, services_document

CSWRR = LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN
METRICS = "metric_names_for_computing_utilization"


def _error(**fields: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(lb=CSWRR, client_side_wrr=fields)
    return info.value


def test_defaults_are_a58s_and_envoys() -> None:
    """Blackout 10 s, expiration 3 min, update 1 s, penalty 1.0, no OOB (period 10 s); the
    policy always carries its settings, so what is stored states them."""
    policy = BalancingPolicy(lb="client-side-weighted-round-robin")
    assert policy.lb is CSWRR
    assert policy.client_side_wrr == ClientSideWrr(
        blackout_period=10.0, weight_expiration_period=180.0, weight_update_period=1.0,
        error_utilization_penalty=1.0, metric_names_for_computing_utilization=(),
        enable_oob_load_report=False, oob_reporting_period=10.0,
    )  # fmt: skip
    assert policy.to_mapping()["client_side_wrr"]["weight_expiration_period"] == 180.0


@given(st.floats(min_value=0.1, max_value=1e6, allow_nan=False))
def test_weight_update_period_accepts_100ms_and_more(seconds: float) -> None:
    """The clients clamp a shorter period to 100 ms: 100 ms and more are taken as given."""
    assert ClientSideWrr(weight_update_period=seconds).weight_update_period == seconds


@given(st.floats(min_value=0.0, max_value=0.1, exclude_max=True))
def test_weight_update_period_below_100ms_is_refused(seconds: float) -> None:
    """Below 100 ms: refused, naming the field and the floor."""
    error = _error(weight_update_period=seconds)
    assert error.field == "client_side_wrr.weight_update_period"
    assert "at least 100ms" in error.message


@given(st.floats(min_value=0.0, max_value=1e6))
def test_penalty_range(penalty: float) -> None:
    """error_utilization_penalty: any number in [0, 1e6]."""
    assert ClientSideWrr(error_utilization_penalty=penalty).error_utilization_penalty == penalty


@pytest.mark.parametrize("bad", [-0.001, 1e6 + 1, math.nan, math.inf, "1", True])
def test_penalty_out_of_range_names_the_range(bad: object) -> None:
    """Below 0, above 1e6, not finite or not a number: refused with the range."""
    error = _error(error_utilization_penalty=bad)
    assert error.field == "client_side_wrr.error_utilization_penalty"
    assert "[0, 1000000.0]" in error.message


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"blackout_period": -1}, "blackout_period"),
        ({"blackout_period": "10"}, "blackout_period"),
        ({"weight_expiration_period": 0}, "weight_expiration_period"),
        ({"oob_reporting_period": "0s"}, "oob_reporting_period"),
        ({"enable_oob_load_report": "yes"}, "enable_oob_load_report"),
        ({METRICS: ["qps"]}, METRICS),
        ({METRICS: ["named_metrics."]}, METRICS),
        ({METRICS: 3}, METRICS),
        ({"unknown": 1}, ""),
    ],
)  # fmt: skip
def test_bad_settings_name_the_dotted_field(fields: dict[str, Any], field: str) -> None:
    """Each bad setting is refused naming `client_side_wrr.FIELD`."""
    error = _error(**fields)
    assert error.field == ("client_side_wrr." + field).rstrip(".")


def test_oob_period_must_be_shorter_than_the_expiration() -> None:
    """Out-of-band reports further apart than the expiration period would expire every
    weight between two reports: refused (and allowed when OOB is off)."""
    error = _error(
        enable_oob_load_report=True, oob_reporting_period=180, weight_expiration_period=180
    )
    assert error.field == "client_side_wrr.oob_reporting_period"
    assert ClientSideWrr(oob_reporting_period=180, weight_expiration_period=180)
    assert ClientSideWrr(enable_oob_load_report=True, oob_reporting_period=179.999)


@pytest.mark.parametrize(
    "name",
    ["cpu_utilization", "mem_utilization", "application_utilization", "named_metrics.cost",
     "utilization.gpu", "request_cost.db", "named_metrics.*"],
)  # fmt: skip
def test_utilization_metric_names_envoy_reads(name: str) -> None:
    """Each name Envoy can read a utilization from is taken; a comma-separated string too."""
    assert ClientSideWrr(metric_names_for_computing_utilization=[name])
    both = ClientSideWrr(metric_names_for_computing_utilization=f"{name}, cpu_utilization")
    assert both.metric_names_for_computing_utilization == (name, "cpu_utilization")


@pytest.mark.parametrize("lb", [lb for lb in LbPolicy if lb is not CSWRR])
def test_settings_belong_to_client_side_wrr_only(lb: LbPolicy) -> None:
    """Another policy with `client_side_wrr` is refused, naming the field and the policy."""
    fields: dict[str, Any] = {"hash_on": ()} if lb is not LbPolicy.SOURCE_IP_HASH else {}
    with pytest.raises(ValidationError) as info:
        BalancingPolicy(lb=lb, client_side_wrr={}, **fields)
    assert info.value.field == "client_side_wrr"
    assert str(lb) in info.value.message


def test_slow_start_is_allowed() -> None:
    """Envoy's ClientSideWeightedRoundRobin has slow start, like its round robin."""
    policy = BalancingPolicy(lb=CSWRR, slow_start={"window": "30s"})
    assert policy.slow_start is not None


_SECONDS = st.floats(min_value=0.1, max_value=3600, allow_nan=False).map(lambda s: round(s, 3))
SETTINGS = st.builds(
    ClientSideWrr,
    blackout_period=st.floats(min_value=0, max_value=3600).map(lambda s: round(s, 3)),
    weight_expiration_period=st.floats(min_value=3601, max_value=1e6).map(lambda s: round(s, 3)),
    weight_update_period=_SECONDS,
    error_utilization_penalty=st.floats(min_value=0, max_value=1e6),
    metric_names_for_computing_utilization=st.lists(
        st.sampled_from(["cpu_utilization", "named_metrics.a", "utilization.b"]), max_size=3
    ).map(tuple),
    enable_oob_load_report=st.booleans(),
    oob_reporting_period=_SECONDS,
)


@given(SETTINGS)
def test_every_stored_form_reads_back_the_same(settings: ClientSideWrr) -> None:
    """The mapping, the etcd value and the policy built from a mapping give back the policy."""
    policy = BalancingPolicy(lb=CSWRR, client_side_wrr=settings)
    assert ClientSideWrr.from_mapping(settings.to_mapping(), "client_side_wrr") == settings
    assert build_policy(policy.to_mapping()) == policy
    assert parse_policy(policy_value(policy)) == policy


def test_services_file_reads_the_settings() -> None:
    """A services file (`xdscp serve`'s static source, `simulate --file`): the settings with
    units; a bad one is refused at its line with the dotted field."""
    text = (
        "services:\n  web:\n    policy:\n      lb: client_side_weighted_round_robin\n"
        "      client_side_wrr:\n        blackout_period: 1s\n"
        "        weight_update_period: 250ms\n        enable_oob_load_report: true\n"
        "        oob_reporting_period: 2s\n    endpoints:\n      - {address: 10.0.0.1, port: 80}\n"
    )
    settings = load_services(text)["web"].policy.client_side_wrr
    assert settings == ClientSideWrr(
        blackout_period=1.0, weight_update_period=0.25, enable_oob_load_report=True,
        oob_reporting_period=2.0,
    )  # fmt: skip
    with pytest.raises(ConfigFieldError) as info:
        load_services(text.replace("250ms", "50ms"))
    assert ":7:" in str(info.value)
    assert "services.web.policy.client_side_wrr.weight_update_period" in str(info.value)
    with pytest.raises(ConfigFieldError, match=r"client_side_wrr.*unknown field 'blackout'"):
        load_services(text.replace("blackout_period", "blackout"))


@given(SETTINGS)
def test_services_document_round_trips(settings: ClientSideWrr) -> None:
    """What `services_document` writes, `load_services` reads back the same."""
    policy = BalancingPolicy(lb=CSWRR, client_side_wrr=settings)
    services = {"web": Service("web", (Endpoint("10.0.0.1", 80),), policy)}
    assert load_services(yaml.safe_dump(services_document(services))) == services
