"""Weights from load: A58's per-endpoint weight, the picker's weights, and where the loop
between weights and reports converges (the capacities' shares, whatever the load)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.balancer.load_aware import (
    OrcaSettings,
    OrcaWeight,
    converge,
    converge_adaptive,
    follow,
    scheduler_weights,
)
from xdscp.load import AdaptiveSettings

SETTINGS = OrcaSettings()


def test_a_weight_counts_only_after_the_blackout_and_until_it_expires() -> None:
    weight = OrcaWeight(SETTINGS)
    weight.update(0.0, qps=100, eps=0, utilization=0.5)
    assert weight.get(9.9) == 0.0
    weight.update(10.0, qps=100, eps=0, utilization=0.5)
    assert weight.get(10.0) == 200.0
    assert weight.get(10.0 + 179.9) == 200.0
    assert weight.get(10.0 + 180.0) == 0.0  # expired: and the blackout starts over
    weight.update(200.0, qps=100, eps=0, utilization=0.25)
    assert weight.get(205.0) == 0.0
    assert weight.get(210.0) == 400.0


def test_errors_count_as_utilization_and_empty_reports_change_nothing() -> None:
    weight = OrcaWeight(OrcaSettings(blackout_period_s=0, error_utilization_penalty=2.0))
    weight.update(0.0, qps=100, eps=10, utilization=0.3)
    assert weight.get(0.0) == pytest.approx(100 / (0.3 + 0.1 * 2.0))
    weight.update(1.0, qps=0, eps=0, utilization=0.9)
    weight.update(1.0, qps=50, eps=0, utilization=0)
    assert weight.get(1.0) == pytest.approx(200.0)


def test_a_reconnected_endpoint_waits_out_the_blackout_again() -> None:
    weight = OrcaWeight(SETTINGS)
    weight.update(0.0, 10, 0, 0.1)
    assert weight.get(20.0) == 100.0
    weight.ready()
    weight.update(21.0, 10, 0, 0.1)
    assert weight.get(25.0) == 0.0
    assert weight.get(31.0) == 100.0


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=20))
def test_the_picker_gives_the_mean_to_the_unweighted_and_equal_weights_below_two(
    weights: list[float],
) -> None:
    scheduled = scheduler_weights(weights)
    known = [w for w in weights if w > 0]
    if len(known) < 2:
        assert scheduled == [1.0] * len(weights)
    else:
        mean = sum(known) / len(known)
        assert scheduled == [w if w > 0 else mean for w in weights]
        assert all(w > 0 for w in scheduled)


capacities = st.dictionaries(st.sampled_from("abcde"), st.floats(1, 50), min_size=2, max_size=5)


@given(capacities, st.floats(0.05, 2))
def test_clients_converge_to_the_capacities_shares_right_after_the_blackout(
    capacity: dict[str, float], busy: float
) -> None:
    result = converge(capacity, busy * sum(capacity.values()))
    total = sum(capacity.values())
    assert result.shares[-1] == pytest.approx({k: c / total for k, c in capacity.items()})
    assert result.settled_at is not None
    assert result.settled_at <= SETTINGS.blackout_period_s + 1.0
    before = [s for t, s in zip(result.times, result.shares, strict=True) if t < 10.0]
    assert all(s == pytest.approx(dict.fromkeys(capacity, 1 / len(capacity))) for s in before)


def test_one_two_four_converges_to_sevenths() -> None:
    """The demo's three backends: capacities 1 : 2 : 4 take 1/7, 2/7, 4/7."""
    for result in (converge({"a": 1, "b": 2, "c": 4}, 3.5),
                   converge_adaptive({"a": 1, "b": 2, "c": 4}, 3.5)):  # fmt: skip
        assert result.shares[-1] == pytest.approx({"a": 1 / 7, "b": 2 / 7, "c": 4 / 7}, abs=0.002)


@given(capacities, st.floats(0.05, 2))
def test_xdscps_weights_converge_too_within_a_few_pushes(
    capacity: dict[str, float], busy: float
) -> None:
    settings = AdaptiveSettings()
    result = converge_adaptive(capacity, busy * sum(capacity.values()), settings)
    assert result.settled_at is not None
    ratio = max(capacity.values()) / min(capacity.values())
    pushes = math.ceil(math.log(ratio, settings.max_step)) + 2
    assert result.settled_at <= pushes * settings.min_push_interval_s


@given(
    st.floats(min_value=0.0, max_value=20.0).map(lambda s: round(s, 1)),
    st.sampled_from([0.1, 0.5, 1.0]),
    st.integers(min_value=1, max_value=10),
)
def test_out_of_band_reports_settle_one_report_plus_the_blackout_in(
    blackout: float, update: float, reports_per: int
) -> None:
    """Reports every `every` s (a multiple of the update period): the first comes at `every`,
    the weights count `blackout` later, at the next update (per-call: every = update)."""
    every = update * reports_per
    settings = OrcaSettings(blackout_period_s=blackout, weight_update_period_s=update)
    settled = converge(
        {"a": 1.0, "b": 3.0}, 100.0, settings, window_s=update, duration_s=every + blackout + 5,
        report_every_s=every,
    ).settled_at  # fmt: skip
    assert settled is not None
    expected = math.ceil(round((every + blackout) / update, 6)) * update
    assert settled == pytest.approx(expected)


@pytest.mark.parametrize(("every", "expected"), [(None, 0.1), (1.0, 1.0), (2.5, 2.5)])
def test_a_change_of_capacity_is_followed_within_one_report(
    every: float | None, expected: float
) -> None:
    """No new blackout: the shares follow the change at the first report after it (worst
    case: a whole report interval), read at the next update."""
    settings = OrcaSettings(blackout_period_s=1.0, weight_update_period_s=0.1)
    before, after = {"a": 100.0, "b": 200.0, "c": 400.0}, {"a": 400.0, "b": 200.0, "c": 400.0}
    took = follow(before, after, 300.0, settings, window_s=0.1, report_every_s=every)
    assert took == pytest.approx(expected)
