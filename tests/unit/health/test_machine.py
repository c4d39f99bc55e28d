"""The verdict state machine: thresholds, streaks and transitions, over any result sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.health import EndpointState, Thresholds, Transition, Verdict, observe

thresholds = st.builds(Thresholds, st.integers(1, 6), st.integers(1, 6))
results = st.lists(st.booleans(), max_size=60)


def run(sequence: list[bool], limits: Thresholds) -> list[tuple[EndpointState, Transition | None]]:
    state, out = EndpointState(), []
    for ok in sequence:
        state, transition = observe(state, ok, limits)
        out.append((state, transition))
    return out


def trailing(sequence: list[bool], value: bool) -> int:
    """How many results at the end of `sequence` equal `value`."""
    count = 0
    for ok in reversed(sequence):
        if ok is not value:
            break
        count += 1
    return count


@given(results, thresholds)
def test_unhealthy_exactly_after_the_threshold_of_consecutive_failures(
    sequence: list[bool], limits: Thresholds
) -> None:
    """A verdict turns UNHEALTHY at the result that completes `unhealthy` consecutive
    failures, and never otherwise."""
    for index, (state, transition) in enumerate(run(sequence, limits)):
        prefix = sequence[: index + 1]
        if transition is not None and transition.after is Verdict.UNHEALTHY:
            assert trailing(prefix, False) == limits.unhealthy
            assert transition.before is not Verdict.UNHEALTHY
        if state.verdict is Verdict.UNHEALTHY:
            assert trailing(prefix, True) < limits.healthy


@given(results, thresholds)
def test_healthy_again_only_after_the_healthy_threshold(
    sequence: list[bool], limits: Thresholds
) -> None:
    """From UNHEALTHY, a verdict turns HEALTHY at exactly `healthy` consecutive successes;
    from UNKNOWN, the first success does."""
    for index, (_, transition) in enumerate(run(sequence, limits)):
        if transition is None or transition.after is not Verdict.HEALTHY:
            continue
        streak = trailing(sequence[: index + 1], True)
        if transition.before is Verdict.UNHEALTHY:
            assert streak == limits.healthy
        else:
            assert transition.before is Verdict.UNKNOWN
            assert streak == 1


@given(results, thresholds)
def test_streaks_and_transitions_are_consistent(sequence: list[bool], limits: Thresholds) -> None:
    """A streak counts one kind of result only, a transition changes the verdict and is
    the only thing that does, and UNKNOWN is never re-entered."""
    previous = EndpointState()
    for state, transition in run(sequence, limits):
        assert state.successes == 0 or state.failures == 0
        if transition is None:
            assert state.verdict is previous.verdict
        else:
            assert (transition.before, transition.after) == (previous.verdict, state.verdict)
            assert transition.before is not transition.after
            assert (state.successes, state.failures) == (0, 0)
        if previous.verdict is not Verdict.UNKNOWN:
            assert state.verdict is not Verdict.UNKNOWN
        previous = state


@given(thresholds, st.integers(0, 20))
def test_a_flapping_endpoint_below_the_thresholds_never_changes(
    limits: Thresholds, flips: int
) -> None:
    """Alternating results never reach a threshold above 1 once a verdict exists."""
    if limits.healthy == 1 or limits.unhealthy == 1:
        return
    state, _ = observe(EndpointState(), True, limits)
    for ok in [False, True] * flips:
        state, transition = observe(state, ok, limits)
        assert transition is None
        assert state.verdict is Verdict.HEALTHY


def test_a_conversation() -> None:
    """Unknown -> healthy at once -> unhealthy after 3 failures -> healthy after 2 successes."""
    limits = Thresholds(healthy=2, unhealthy=3)
    sequence = [True, False, False, False, True, False, True, True]
    verdicts = [state.verdict.value for state, _ in run(sequence, limits)]
    assert verdicts == [
        "healthy", "healthy", "healthy", "unhealthy",
        "unhealthy", "unhealthy", "unhealthy", "healthy",
    ]  # fmt: skip


def test_thresholds_below_one_are_refused() -> None:
    """A threshold of 0 would flip on nothing."""
    with pytest.raises(ValueError, match="thresholds"):
        Thresholds(0, 3)
