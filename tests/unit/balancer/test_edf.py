"""The EDF scheduler against its definition (spec §2, Envoy's edf_scheduler.h and its tests)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from xdscp.balancer.edf import EdfScheduler
from xdscp.errors import BalancerError


def _contents(scheduler: EdfScheduler[int]) -> list[tuple[float, int]]:
    """(deadline, entry) in pop order, without disturbing the scheduler."""
    return [(deadline, entry) for deadline, _, entry in sorted(scheduler._heap)]


def _direct(weights: list[float], picks: int) -> EdfScheduler[int]:
    scheduler: EdfScheduler[int] = EdfScheduler()
    for i, w in enumerate(weights):
        scheduler.add(w, i)
    for _ in range(picks):
        scheduler.pick_and_add(weights.__getitem__)
    return scheduler


def test_add_and_pick_follow_deadlines_with_fifo_ties() -> None:
    """Deadline = now + 1/w; equal deadlines pop in insertion order; re-adds use the clock."""
    scheduler: EdfScheduler[str] = EdfScheduler()
    weights = {"a": 1.0, "b": 1.0, "c": 2.0}
    for name, w in weights.items():
        scheduler.add(w, name)
    picks = [scheduler.pick_and_add(weights.__getitem__) for _ in range(8)]
    # c due 0.5; a, b due 1.0 (a first); c again 1.0 (added after a and b); then 1.5 (c) ...
    assert picks == ["c", "a", "b", "c", "c", "a", "b", "c"]


def test_zero_picks_equals_adding_one_by_one() -> None:
    """createWithPicks(picks=0) holds the same entries and deadlines as plain adds (weights
    1..128, Envoy's SchedulerWithZeroPicksEqualToEmptyWithAddedEntries)."""
    weights = [float(i + 1) for i in range(128)]
    built = EdfScheduler.create_with_picks(list(range(128)), weights.__getitem__, 0)
    direct = _direct(weights, 0)
    for (d1, e1), (d2, e2) in zip(_contents(built), _contents(direct), strict=True):
        assert e1 == e2
        assert d1 == pytest.approx(d2, abs=1e-5)


@pytest.mark.parametrize("picks", [5, 140, 501, 123_456])
def test_create_with_picks_matches_direct_simulation(picks: int) -> None:
    """The emulated picks leave the scheduler where `picks` real picks leave it (Envoy's
    SchedulerWithSomePicksEqualToEmptyWithAddedEntries: 128 distinct weights in [0.01, 100.5])."""
    weights = [(100.5 - 0.01) / 128 * i + 0.01 for i in range(128)]
    built = EdfScheduler.create_with_picks(list(range(128)), weights.__getitem__, picks)
    direct = _direct(weights, picks)
    assert built.current_time == pytest.approx(direct.current_time, abs=1e-5)
    for (d1, e1), (d2, e2) in zip(_contents(built), _contents(direct), strict=True):
        assert e1 == e2
        assert d1 == pytest.approx(d2, abs=1e-5)
    # ... and so the next picks are the same.
    follow_built = [built.pick_and_add(weights.__getitem__) for _ in range(300)]
    follow_direct = [direct.pick_and_add(weights.__getitem__) for _ in range(300)]
    assert follow_built == follow_direct


def test_seed_is_truncated_to_32_bits_and_capped() -> None:
    """Picks = (seed mod 2**32) % 429496729: seeds equal modulo that give equal schedulers."""
    weights = [1.0, 2.0, 7.0]
    a = EdfScheduler.create_with_picks([0, 1, 2], weights.__getitem__, 12345)
    b = EdfScheduler.create_with_picks([0, 1, 2], weights.__getitem__, (7 << 32) + 12345)
    c = EdfScheduler.create_with_picks([0, 1, 2], weights.__getitem__, 12345 + 429_496_729)
    seq = [[s.pick_and_add(weights.__getitem__) for _ in range(50)] for s in (a, b, c)]
    assert seq[0] == seq[1] == seq[2]


@pytest.mark.parametrize("weights", [[25.0, 75.0], [1.0, 99.0], [50.0, 50.0], [1.0, 20.0, 79.0]])
def test_first_pick_after_random_seed_follows_weights(weights: list[float]) -> None:
    """Over random seeds, the first pick lands on each entry in proportion to its weight
    (Envoy's SchedulerWithRandomPicksFirstPickDistribution, 1.5 % tolerance)."""
    rng = random.Random(7)
    iterations = 20_000
    firsts: Counter[int] = Counter()
    for _ in range(iterations):
        scheduler = EdfScheduler.create_with_picks(
            list(range(len(weights))), weights.__getitem__, rng.getrandbits(32)
        )
        firsts[scheduler.pick_and_add(weights.__getitem__)] += 1  # type: ignore[index]
    for i, w in enumerate(weights):
        assert 100 * firsts[i] / iterations == pytest.approx(w, abs=1.5)


def test_empty_scheduler_picks_nothing_and_rejects_bad_weights() -> None:
    """No entries → None; weights must be positive, as Envoy asserts."""
    empty = EdfScheduler.create_with_picks([], lambda _: 1.0, 99)
    assert empty.pick_and_add(lambda _: 1.0) is None
    with pytest.raises(BalancerError):
        EdfScheduler().add(0.0, "x")
    with pytest.raises(BalancerError):
        EdfScheduler.create_with_picks(["x"], lambda _: 0.0, 1)


def test_deadlines_never_precede_the_clock() -> None:
    """Every queued deadline is >= the scheduler's current time (Envoy asserts this)."""
    weights = [3.0, 5.0, 11.0, 0.5]
    scheduler = EdfScheduler.create_with_picks([0, 1, 2, 3], weights.__getitem__, 1000)
    for _ in range(100):
        scheduler.pick_and_add(weights.__getitem__)
        assert min(d for d, _ in _contents(scheduler)) >= scheduler.current_time
