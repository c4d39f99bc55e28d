"""One endpoint's sample: what it says about the capacity, and when it says nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.load import LoadSample, capacity_of, implausible

rates = st.floats(0.1, 1e6)
utilizations = st.floats(0.001, 100)


@given(rates, utilizations)
def test_without_errors_the_capacity_is_the_rate_at_full_utilization(
    rps: float, utilization: float
) -> None:
    sample = LoadSample("a", 0.0, rps, utilization)
    assert implausible(sample) is None
    assert capacity_of(sample, error_penalty=1.0) * utilization == pytest.approx(rps)


@given(rates, utilizations, st.floats(0.01, 1), st.floats(0.1, 10))
def test_errors_lower_the_capacity_by_the_penalty_and_only_by_it(
    rps: float, utilization: float, error_share: float, penalty: float
) -> None:
    """gRFC A58: errors count as utilization `eps / qps * error_utilization_penalty`."""
    failing = LoadSample("a", 0.0, rps, utilization, eps=rps * error_share)
    clean = LoadSample("a", 0.0, rps, utilization)
    assert capacity_of(failing, penalty) < capacity_of(clean, penalty)
    assert capacity_of(failing, 0.0) == capacity_of(clean, 0.0)
    assert capacity_of(failing, penalty) == pytest.approx(
        rps / (utilization + error_share * penalty)
    )


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        (LoadSample("a", 0.0, float("nan"), 0.5), "rps is nan"),
        (LoadSample("a", 0.0, 10.0, -0.5), "utilization is negative (-0.5)"),
        (LoadSample("a", 0.0, 10.0, 0.5, eps=11.0), "eps 11.0 is above rps 10.0"),
        (LoadSample("a", 0.0, 0.0, 0.5), "no traffic or no utilization: nothing to learn the"
         " capacity from"),
        (LoadSample("a", float("inf"), 10.0, 0.5), "at is inf"),
    ],
)  # fmt: skip
def test_an_unusable_sample_says_why_in_one_line(sample: LoadSample, reason: str) -> None:
    assert implausible(sample) == reason
