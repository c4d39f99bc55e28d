"""Weights computed from load: one service's endpoints, sans I/O.

Each endpoint's capacity is estimated from what it reports (`samples.capacity_of`: requests
per second over utilization, gRFC A58's formula) and smoothed; the registered weight says what
the capacities are worth together. The weights pushed are the estimates scaled so that the
endpoints that report share what their registered weights add up to, and the endpoints that
do not report keep their registered weight. A backend's utilization is its rate over its
capacity, so with shares proportional to the weights the estimate is the capacity itself,
whatever the total load: the weights converge to the capacities, whatever the timing.

What a production loop needs, each a setting: smoothing (an exponentially weighted mean of
the estimates), a bounded step (a weight moves at most `max_step` times up or down per push),
a floor (no endpoint below `floor` of the mean weight, so none starves and its reports keep
coming), hysteresis (nothing is pushed while every weight would move by less than
`hysteresis`), a minimum interval between pushes, and a fall-back: an endpoint whose reports
stopped or were implausible for `stale_after_s` returns to its registered weight; with no
endpoint reporting, every weight is the registered one at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from xdscp.load.samples import LoadSample, capacity_of, implausible
from xdscp.model import AdaptiveSettings

RESOLUTION = 1000  # the heaviest endpoint's pushed weight; the others in proportion
SAME_SAMPLE_S = 1e-3  # a sample seen no later than this after the last taken: the same one


@dataclass(frozen=True, slots=True)
class WeightPush:
    """The weights to serve now, by endpoint key, and why they changed."""

    weights: Mapping[str, int]
    reporting: frozenset[str]  # the endpoints whose weight came from their reports


class AdaptiveWeights:
    """One service's computed weights: `observe` samples, `set_registered` when the endpoints
    change, `decide(now)` for the weights to push (None: keep what was pushed)."""

    def __init__(self, settings: AdaptiveSettings, registered: Mapping[str, int]) -> None:
        self._settings = settings
        self._registered = dict(registered)
        self._capacity: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._current: dict[str, float] = {k: float(w) for k, w in registered.items()}
        self._last_push: float | None = None
        self._settled = True

    @property
    def current(self) -> Mapping[str, float]:
        """The weights last decided, in registered units."""
        return dict(self._current)

    def set_registered(self, registered: Mapping[str, int]) -> None:
        """The endpoints and their registered weights now: the removed are forgotten, the
        added start at their registered weight."""
        self._registered = dict(registered)
        for gone in set(self._current) - set(registered):
            self._current.pop(gone)
            self._capacity.pop(gone, None)
            self._seen.pop(gone, None)
        for key, weight in registered.items():
            self._current.setdefault(key, float(weight))

    def observe(self, sample: LoadSample) -> str | None:
        """Take one sample; returns why it was ignored (None: taken). A sample seen no later
        than the last one taken for its endpoint is the same report read again (the loop
        decides more often than clients report): smoothing counts each report once. A sample
        whose interval began before the last push mixes two weightings (its rate is partly
        the new one's, the utilization the backend measured partly the old one's: the
        estimate is off in the direction of the push, which would overshoot), so it only
        keeps its endpoint fresh."""
        if sample.endpoint not in self._registered:
            return "not an endpoint of this service"
        reason = implausible(sample)
        if reason is not None:
            return reason
        last = self._seen.get(sample.endpoint)
        if last is not None and sample.at <= last + SAME_SAMPLE_S:
            return "already taken (no newer report)"
        self._seen[sample.endpoint] = sample.at  # it reports: not stale, whatever follows
        pushed = self._last_push
        if sample.since is not None and pushed is not None and sample.since < pushed:
            return "covers traffic from before the last push"
        estimate = capacity_of(sample, self._settings.error_penalty)
        before = self._capacity.get(sample.endpoint)
        a = self._settings.smoothing
        self._capacity[sample.endpoint] = (
            estimate if before is None else a * estimate + (1 - a) * before
        )
        return None

    def decide(self, now: float) -> WeightPush | None:
        """The weights to push at `now`, or None when nothing should be pushed yet."""
        s = self._settings
        if self._last_push is not None and now - self._last_push < s.min_push_interval_s:
            return None
        fresh = {
            k for k, at in self._seen.items() if now - at <= s.stale_after_s and k in self._capacity
        }
        target, reached = self._bounded(self._target(fresh)) if fresh else (
            self._registered_floats(), True)  # fmt: skip
        # Hysteresis holds only once a push reached its targets: a step cut short by max_step
        # is always followed, so the weights converge whatever the band.
        if self._last_push is not None and self._settled and not self._moves(target):
            return None
        self._current, self._last_push, self._settled = target, now, reached
        return WeightPush(whole_weights(target), frozenset(fresh))

    def _registered_floats(self) -> dict[str, float]:
        return {k: float(w) for k, w in self._registered.items()}

    def _target(self, fresh: set[str]) -> dict[str, float]:
        """Estimates scaled to what the reporting endpoints' registered weights add up to."""
        scale = sum(self._registered[k] for k in fresh) / sum(self._capacity[k] for k in fresh)
        return {
            k: self._capacity[k] * scale if k in fresh else float(w)
            for k, w in self._registered.items()
        }

    def _bounded(self, target: dict[str, float]) -> tuple[dict[str, float], bool]:
        """At most `max_step` times up or down from the current weight, then the floor; and
        whether every weight reached its target (no step was cut short)."""
        step = self._settings.max_step
        out = {}
        for key, want in target.items():
            now = self._current.get(key, want)
            out[key] = min(max(want, now / step), now * step)
        reached = all(math.isclose(out[k], w) for k, w in target.items())
        return _floored(out, self._settings.floor), reached

    def _moves(self, target: Mapping[str, float]) -> bool:
        """Whether some weight moves by more than the hysteresis (or the endpoints changed)."""
        if set(target) != set(self._current):
            return True
        band = self._settings.hysteresis
        return any(abs(w - self._current[k]) > band * self._current[k] for k, w in target.items())


def _floored(weights: dict[str, float], floor: float) -> dict[str, float]:
    """No weight below `floor` times the mean of the weights returned: the weights below it
    are raised together to exactly that (a set that only grows, so it ends within n rounds:
    raising some lifts the mean, which may catch others)."""
    out, n = dict(weights), len(weights)
    low: set[str] = set()
    for _ in range(n):
        mean = sum(out.values()) / n
        caught = {k for k, w in out.items() if k not in low and w < floor * mean * (1 - 1e-12)}
        if not caught:
            break
        low |= caught
        rest = sum(w for k, w in out.items() if k not in low)
        least = floor * rest / (n - floor * len(low))
        out.update(dict.fromkeys(low, least))
    return out


def whole_weights(weights: Mapping[str, float]) -> dict[str, int]:
    """Whole weights (xDS's are integers >= 1), the heaviest RESOLUTION: what is served."""
    if not weights:
        return {}
    top = max(weights.values())
    return {k: max(1, round(w / top * RESOLUTION)) for k, w in weights.items()}
