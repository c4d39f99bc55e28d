"""Computed weights: converge to the capacities whatever the load, stably, and fall back."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.load import RESOLUTION, AdaptiveSettings, AdaptiveWeights, LoadSample

SETTINGS = AdaptiveSettings()
EVERY = SETTINGS.min_push_interval_s


def _report(weights: AdaptiveWeights, capacity: dict[str, float], load: float, at: float) -> None:
    """Each backend reports what it serves of `load` (its share of the current weights) and
    the utilization that is for its capacity, as `xdscp backend --capacity` does."""
    current = weights.current
    total = sum(current.values())
    for key, share in current.items():
        rps = load * share / total
        assert weights.observe(LoadSample(key, at, rps, rps / capacity[key])) is None


def _run(
    weights: AdaptiveWeights, capacity: dict[str, float], load: float, rounds: int
) -> list[dict[str, int]]:
    pushed = []
    for i in range(rounds):
        _report(weights, capacity, load, i * EVERY)
        push = weights.decide(i * EVERY)
        if push is not None:
            pushed.append(dict(push.weights))
    return pushed


capacities = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e"]), st.floats(1, 10), min_size=1, max_size=5
)


@given(capacities, st.floats(0.01, 3), st.integers(1, 5))
def test_weights_converge_to_the_capacities_whatever_the_load(
    capacity: dict[str, float], busy: float, registered: int
) -> None:
    """Whatever the load (`busy`: a fraction of the fleet's capacity, over it too)."""
    weights = AdaptiveWeights(SETTINGS, dict.fromkeys(capacity, registered))
    pushed = _run(weights, capacity, busy * sum(capacity.values()), 20)
    last, top = pushed[-1], max(capacity.values())
    for key, c in capacity.items():
        assert last[key] == pytest.approx(c / top * RESOLUTION, abs=1), (last, capacity)
    assert sum(weights.current.values()) == pytest.approx(registered * len(capacity))


@given(capacities, st.floats(0.01, 3))
def test_every_push_moves_a_weight_at_most_one_step(
    capacity: dict[str, float], busy: float
) -> None:
    weights = AdaptiveWeights(SETTINGS, dict.fromkeys(capacity, 1))
    for i in range(12):
        before = weights.current
        _report(weights, capacity, busy * sum(capacity.values()), i * EVERY)
        if weights.decide(i * EVERY) is None:
            continue
        for key, w in weights.current.items():
            assert before[key] / SETTINGS.max_step - 1e-9 <= w <= before[key] * SETTINGS.max_step


def test_once_converged_noise_inside_the_band_pushes_nothing() -> None:
    capacity = {"a": 1.0, "b": 2.0, "c": 4.0}
    weights = AdaptiveWeights(SETTINGS, dict.fromkeys(capacity, 1))
    _run(weights, capacity, 700, 10)
    pushes = 0
    for i, wobble in enumerate([1.03, 0.97, 1.05, 0.95] * 5, start=10):
        _report(weights, {k: c * wobble for k, c in capacity.items()}, 700, i * EVERY)
        pushes += weights.decide(i * EVERY) is not None
    assert pushes == 0


def test_nothing_is_pushed_before_the_minimum_interval() -> None:
    weights = AdaptiveWeights(SETTINGS, {"a": 1, "b": 1})
    assert weights.decide(0.0) is not None  # the first decision always pushes
    _report(weights, {"a": 1.0, "b": 8.0}, 100, 1.0)
    assert weights.decide(EVERY - 0.001) is None
    push = weights.decide(EVERY)
    assert push is not None
    assert push.reporting == {"a", "b"}
    assert push.weights["b"] > push.weights["a"]


def test_the_floor_keeps_a_nearly_dead_endpoint_in_rotation() -> None:
    capacity = {"a": 1.0, "b": 1000.0}
    weights = AdaptiveWeights(SETTINGS, {"a": 1, "b": 1})
    pushed = _run(weights, capacity, 500, 40)
    least = SETTINGS.floor * sum(weights.current.values()) / 2
    assert weights.current["a"] == pytest.approx(least)
    assert pushed[-1]["a"] >= 1


def test_endpoints_that_do_not_report_keep_their_registered_weight() -> None:
    weights = AdaptiveWeights(SETTINGS, {"a": 2, "b": 2, "silent": 4})
    for i in range(10):
        for key, rps in (("a", 10.0), ("b", 30.0)):
            weights.observe(LoadSample(key, i * EVERY, rps, rps / {"a": 1, "b": 3}[key]))
        weights.decide(i * EVERY)
    assert weights.current == pytest.approx({"a": 1.0, "b": 3.0, "silent": 4.0})


def test_reports_that_stop_fall_back_to_the_registered_weights() -> None:
    weights = AdaptiveWeights(SETTINGS, {"a": 1, "b": 3})
    _run(weights, {"a": 5.0, "b": 1.0}, 60, 10)
    assert weights.current["a"] > weights.current["b"]
    quiet = 9 * EVERY + SETTINGS.stale_after_s + 1
    push = weights.decide(quiet)
    assert push is not None
    assert push.reporting == frozenset()
    assert dict(push.weights) == {"a": round(RESOLUTION / 3), "b": RESOLUTION}


UNUSABLE = [math.nan, math.inf, -math.inf, -1.0]
bad_values = st.one_of(
    st.tuples(st.just("at"), st.sampled_from(UNUSABLE)),
    st.tuples(st.just("rps"), st.sampled_from([*UNUSABLE, 0.0, 2e9])),
    st.tuples(st.just("utilization"), st.sampled_from([*UNUSABLE, 0.0, 1001.0])),
    st.tuples(st.just("eps"), st.sampled_from([*UNUSABLE, 10.5])),  # above the rps
)


@given(st.lists(bad_values))
def test_implausible_samples_are_refused_and_change_nothing(
    bad: list[tuple[str, float]],
) -> None:
    clean = AdaptiveWeights(SETTINGS, {"a": 1, "b": 1})
    noisy = AdaptiveWeights(SETTINGS, {"a": 1, "b": 1})
    for field, value in bad:
        sample = {"endpoint": "a", "at": 1.0, "rps": 10.0, "utilization": 0.5, "eps": 0.0}
        sample[field] = value
        reason = noisy.observe(LoadSample(**sample))  # type: ignore[arg-type]
        assert reason is not None, sample
    for weights in (clean, noisy):
        weights.observe(LoadSample("b", 2.0, 10.0, 0.25))
    assert clean.decide(5.0) == noisy.decide(5.0)
    assert clean.current == noisy.current


def test_a_sample_for_another_endpoint_is_refused() -> None:
    weights = AdaptiveWeights(SETTINGS, {"a": 1})
    assert weights.observe(LoadSample("zz", 1.0, 10, 0.5)) == "not an endpoint of this service"


def test_removed_endpoints_are_forgotten_and_added_ones_start_registered() -> None:
    weights = AdaptiveWeights(SETTINGS, {"a": 1, "b": 1})
    _run(weights, {"a": 1.0, "b": 4.0}, 50, 8)
    weights.set_registered({"b": 1, "c": 3})
    assert set(weights.current) == {"b", "c"}
    assert weights.current["c"] == 3.0
    assert weights.observe(LoadSample("a", 99.0, 10, 0.5)) == "not an endpoint of this service"


@pytest.mark.parametrize(
    ("field", "value"),
    [("smoothing", 0.0), ("max_step", 1.0), ("floor", math.nan), ("stale_after", -1.0),
     ("hysteresis", 2.0), ("min_push_interval", math.inf), ("error_penalty", -0.1)],
)  # fmt: skip
def test_settings_out_of_range_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as error:
        AdaptiveSettings(**{field: value})
    assert error.value.field == field
    with pytest.raises(ValidationError) as nested:
        AdaptiveSettings.from_mapping({field: value}, "adaptive_weights")
    assert nested.value.field == f"adaptive_weights.{field}"


wide_capacities = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]), st.floats(1e-3, 1e6), min_size=2, max_size=4
)


@given(wide_capacities, st.floats(0.0, 0.5), st.integers(1, 30))
def test_no_weight_ever_falls_below_the_floor(
    capacity: dict[str, float], floor: float, rounds: int
) -> None:
    """Capacities a billion times apart: every decided weight stays >= floor x the mean."""
    settings_ = AdaptiveSettings(floor=floor, max_step=100.0)
    weights = AdaptiveWeights(settings_, dict.fromkeys(capacity, 1))
    for i in range(rounds):
        for key, c in capacity.items():  # each at half its capacity
            weights.observe(LoadSample(key, i * EVERY, c / 2, 0.5))
        weights.decide(i * EVERY)
        current = weights.current
        mean = sum(current.values()) / len(current)
        assert min(current.values()) >= floor * mean * (1 - 1e-9), current


@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=40), st.floats(0.0, 20.0))
def test_pushes_are_never_closer_than_the_minimum_interval(
    gaps: list[float], interval: float
) -> None:
    """Whatever the tick times and the samples: two pushes are `min_push_interval` apart."""
    weights = AdaptiveWeights(AdaptiveSettings(min_push_interval=interval), {"a": 1, "b": 1})
    now, pushed_at = 0.0, []
    for i, gap in enumerate(gaps):
        now += gap
        rps = 10.0 + i
        weights.observe(LoadSample("a", now, rps, rps / (1 + i % 3)))
        weights.observe(LoadSample("b", now, rps, rps / 5))
        if weights.decide(now) is not None:
            pushed_at.append(now)
    assert all(b - a >= interval for a, b in itertools.pairwise(pushed_at))


@given(st.lists(st.floats(0.97, 1.03), min_size=3, max_size=3), st.integers(1, 20))
def test_once_settled_wobble_inside_the_band_never_pushes(wobble: list[float], rounds: int) -> None:
    """Converged on 1 : 2 : 4, each backend's utilization wobbling by up to 3 % (the band is
    10 %): no push, however long."""
    capacity = {"a": 1.0, "b": 2.0, "c": 4.0}
    weights = AdaptiveWeights(SETTINGS, dict.fromkeys(capacity, 1))
    _run(weights, capacity, 700, 10)
    for i in range(10, 10 + rounds):
        shaken = {k: c * w for (k, c), w in zip(capacity.items(), wobble, strict=True)}
        _report(weights, shaken, 700, i * EVERY)
        assert weights.decide(i * EVERY) is None


@given(st.floats(1.0, 1000.0), st.floats(0.001, 100.0))
def test_stale_reports_fall_back_whatever_the_setting(stale_after: float, late: float) -> None:
    """Silent for longer than `stale_after`: the registered weights at the next decision."""
    settings_ = AdaptiveSettings(stale_after=stale_after, min_push_interval=0.0, max_step=100.0)
    weights = AdaptiveWeights(settings_, {"a": 1, "b": 3})
    weights.observe(LoadSample("a", 0.0, 10.0, 0.1))
    weights.observe(LoadSample("b", 0.0, 10.0, 1.0))
    assert weights.decide(0.0) is not None
    assert weights.current["a"] > weights.current["b"]
    push = weights.decide(stale_after + late)
    assert push is not None
    assert push.reporting == frozenset()
    assert weights.current == {"a": 1.0, "b": 3.0}


@given(reads=st.integers(1, 20))
def test_a_report_read_again_on_every_tick_is_smoothed_once(reads: int) -> None:
    """The plane decides every `weigh_interval` (0.25 s) while clients report every LRS
    interval (1 s and more): the same book sample is read several times. Smoothing must
    count it once: with smoothing 0.5, estimates 100 then 200 smooth to 150 however often
    the second is read (read 4 times as 4 estimates, it would be 187.5)."""
    settings = AdaptiveSettings(min_push_interval=0.0, max_step=100.0, floor=0.0, hysteresis=0.0)
    weights = AdaptiveWeights(settings, {"a": 1, "b": 1})
    for key in ("a", "b"):
        assert weights.observe(LoadSample(key, 0.0, 50.0, 0.5)) is None  # capacity 100
    assert weights.observe(LoadSample("a", 1.0, 50.0, 0.5)) is None
    assert weights.observe(LoadSample("b", 1.0, 100.0, 0.5)) is None  # capacity 200
    for _ in range(reads):
        assert weights.observe(LoadSample("b", 1.0, 100.0, 0.5)) is not None
    push = weights.decide(1.0)
    assert push is not None
    assert push.weights == {"a": round(RESOLUTION * 100 / 150), "b": RESOLUTION}


@given(since=st.floats(0.0, 1.999), late=st.floats(0.1, 4.0))
def test_a_report_begun_before_the_last_push_keeps_fresh_but_teaches_nothing(
    since: float, late: float
) -> None:
    """After a push at 2.0, a report whose interval began before it (the rate partly under
    the new weights, the utilization the backend measured partly under the old) would
    overshoot: it is not taken into the estimate, but its endpoint stays fresh (it still
    reports, so no fall-back to the registered weight). A report begun after the push is
    taken."""
    settings = AdaptiveSettings(min_push_interval=0.0, max_step=100.0, floor=0.0,
                                hysteresis=0.0, stale_after=1.0)  # fmt: skip
    weights = AdaptiveWeights(settings, {"a": 1, "b": 1})
    for key, rps in (("a", 50.0), ("b", 100.0)):  # capacities 100, 200
        assert weights.observe(LoadSample(key, 1.0, rps, 0.5)) is None
    first = weights.decide(2.0)
    assert first is not None
    assert first.weights == {"a": RESOLUTION // 2, "b": RESOLUTION}
    at = 2.0 + late
    mixed = LoadSample("a", at, 100.0, 0.25, since=since)  # capacity 400: would move a
    assert weights.observe(mixed) == "covers traffic from before the last push"
    assert weights.observe(LoadSample("b", at, 100.0, 0.5, since=since)) is not None
    assert weights.decide(at) is None  # nothing learnt: nothing pushed, nothing stale
    clean = LoadSample("a", at + 1.0, 100.0, 0.25, since=2.0)
    assert weights.observe(clean) is None
    push = weights.decide(at + 1.0)
    assert push is not None
    assert push.weights["a"] > RESOLUTION // 2
