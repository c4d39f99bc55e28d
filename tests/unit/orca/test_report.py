"""`LoadReport`: the ORCA proto's bounds enforced, every valid report through the proto and back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.orca.strategies import reports
from xdscp.errors import ValidationError
from xdscp.orca import LoadReport


@given(reports())
def test_every_report_round_trips_through_the_proto(report: LoadReport) -> None:
    """to_proto → serialize → parse → from_proto gives the same report."""
    message = type(report.to_proto()).FromString(report.serialize())
    assert LoadReport.from_proto(message) == report


@pytest.mark.parametrize(
    "name",
    ["cpu_utilization", "mem_utilization", "application_utilization", "rps_fractional", "eps"],
)
@pytest.mark.parametrize(
    ("value", "says"),
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (-0.5, "(>=|in)"),
        ("1", "number"),
        (True, "number"),
    ],
)
def test_a_bad_number_is_refused_by_name(name: str, value: object, says: str) -> None:
    """NaN, infinities, negatives and non-numbers are one clear error naming the field."""
    with pytest.raises(ValidationError, match=f"^{name}: must .*{says}") as caught:
        LoadReport(**{name: value})  # type: ignore[arg-type]
    assert caught.value.field == name


@given(st.floats(min_value=1.0, exclude_min=True, allow_infinity=False))
def test_fractions_stay_at_or_below_one(value: float) -> None:
    """`mem_utilization` and every `utilization` value lie in [0, 1]; the CPU may exceed 1."""
    with pytest.raises(ValidationError, match=r"mem_utilization: must be in \[0, 1\]"):
        LoadReport(mem_utilization=value)
    with pytest.raises(ValidationError, match=r"utilization\[db\]: must be in \[0, 1\]"):
        LoadReport(utilization={"db": value})
    assert LoadReport(cpu_utilization=value).cpu_utilization == value


@pytest.mark.parametrize("key", ["", "a b", "a,b", "a=b", "a:b", "x" * 129, "é"])
def test_a_metric_name_headers_cannot_carry_is_refused(key: str) -> None:
    """Names are tokens every header format carries unquoted."""
    with pytest.raises(ValidationError, match="a metric name is"):
        LoadReport(named_metrics={key: 1.0})


def test_named_metrics_may_be_negative_but_not_nan() -> None:
    """`request_cost` and `named_metrics` have no bounds in the proto, but must be finite."""
    assert LoadReport(named_metrics={"delta": -3.0}).named_metrics == {"delta": -3.0}
    with pytest.raises(ValidationError, match=r"request_cost\[q\]: must be finite"):
        LoadReport(request_cost={"q": math.nan})


def test_too_many_metrics_are_refused() -> None:
    """A report stays small: at most 64 entries per map."""
    with pytest.raises(ValidationError, match="at most 64"):
        LoadReport(named_metrics={f"m{i}": 1.0 for i in range(65)})


def test_a_report_is_immutable_and_hashable() -> None:
    """Maps are frozen copies: changing the caller's dict changes nothing."""
    source = {"a": 1.0}
    report = LoadReport(named_metrics=source)
    source["a"] = 2.0
    assert report.named_metrics["a"] == 1.0
    assert hash(report) == hash(LoadReport(named_metrics={"a": 1.0}))
    with pytest.raises(TypeError):
        report.named_metrics["a"] = 3.0  # type: ignore[index]
