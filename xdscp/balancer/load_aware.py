"""Weights that follow load, as the clients and xdscp compute them, and where they converge.

`OrcaWeight` is one endpoint's weight in gRPC's `weighted_round_robin` (gRFC A58) and Envoy's
`client_side_weighted_round_robin`: from each ORCA report, `qps / (utilization + eps / qps *
error_utilization_penalty)`, used only after reports have arrived for `blackout_period` and
until none arrived for `weight_expiration_period`. `scheduler_weights` is what the picker
then schedules: endpoints without a weight get the mean of the others; with fewer than two
weights, every endpoint weighs the same (round robin).

`converge` runs the loop between the weights and what backends report: each backend reports
the rate it served over its last window and a utilization of rate / capacity, the weights
follow, the shares follow the weights. It predicts the shares the clients converge to (the
capacities' shares, whatever the load) and when: after the blackout, within a window.
`follow` predicts how long the shares take to follow a change of capacities (no new
blackout: the next report and the next weight update).
`converge_adaptive` runs the same loop with xdscp's own computed weights (`xdscp.load`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xdscp.load import AdaptiveSettings, AdaptiveWeights, LoadSample

DEFAULT_ADAPTIVE = AdaptiveSettings()
_EPSILON_S = 1e-9  # times are sums of float steps: a blackout ends at its step, not one late


@dataclass(frozen=True, slots=True)
class OrcaSettings:
    """The clients' parameters (A58's names and defaults)."""

    blackout_period_s: float = 10.0
    weight_expiration_period_s: float = 180.0
    weight_update_period_s: float = 1.0
    error_utilization_penalty: float = 1.0


class OrcaWeight:
    """One endpoint's weight in a client, as A58's pseudo-code keeps it."""

    def __init__(self, settings: OrcaSettings) -> None:
        self._settings = settings
        self._weight = 0.0
        self._non_empty_since = math.inf
        self._last_updated = -math.inf

    def update(self, now: float, qps: float, eps: float, utilization: float) -> None:
        """A report arrived (`utilization`: the application's if set, else the CPU's)."""
        if utilization > 0 and qps > 0:
            utilization += eps / qps * self._settings.error_utilization_penalty
        weight = 0.0 if utilization == 0 else qps / utilization
        if weight == 0:
            return
        if self._non_empty_since == math.inf:
            self._non_empty_since = now
        self._last_updated, self._weight = now, weight

    def ready(self) -> None:
        """The connection became ready again: the blackout starts over."""
        self._non_empty_since = math.inf

    def get(self, now: float) -> float:
        """The weight the picker uses at `now` (0: none)."""
        if now - self._last_updated >= self._settings.weight_expiration_period_s:
            self._non_empty_since = math.inf
            return 0.0
        blackout = self._settings.blackout_period_s
        if blackout > 0 and now - self._non_empty_since < blackout - _EPSILON_S:
            return 0.0
        return self._weight


def scheduler_weights(weights: Sequence[float]) -> list[float]:
    """The weights the picker schedules with: no weight → the mean; fewer than two → equal."""
    known = [w for w in weights if w > 0]
    if len(known) < 2:
        return [1.0] * len(weights)
    mean = sum(known) / len(known)
    return [w if w > 0 else mean for w in weights]


@dataclass(frozen=True, slots=True)
class Convergence:
    """Each endpoint's share over time (`shares[i]` at `times[i]`), and the time the shares
    came within `tolerance` of the capacities' shares for good (None: never)."""

    times: list[float]
    shares: list[dict[str, float]]
    settled_at: float | None


def converge(
    capacity: Mapping[str, float],
    load: float,
    settings: OrcaSettings = OrcaSettings(),
    *,
    window_s: float = 1.0,
    duration_s: float = 60.0,
    tolerance: float = 0.02,
    report_every_s: float | None = None,
) -> Convergence:
    """Clients weighing by ORCA: `load` requests per second spread over backends of
    `capacity` requests per second, the weights read every `window_s` (the client's
    `weight_update_period`) and each backend reporting what it served every `report_every_s`
    (None: every window, as per-call reports do under load; the out-of-band period else)."""
    times, shares = _run(
        lambda _: capacity, load, settings, window_s=window_s, duration_s=duration_s,
        report_every_s=report_every_s or window_s,
    )  # fmt: skip
    return Convergence(times, shares, _settled(times, shares, capacity, tolerance))


def follow(
    before: Mapping[str, float],
    after: Mapping[str, float],
    load: float,
    settings: OrcaSettings = OrcaSettings(),
    *,
    window_s: float = 1.0,
    report_every_s: float | None = None,
    tolerance: float = 0.02,
) -> float | None:
    """Seconds the shares take to follow a change of capacities from `before` (converged) to
    `after`, the change landing just after a report (the worst case); None: never within a
    minute of it. The endpoints keep reporting, so no blackout starts over: the next report and the
    next weight update carry it."""
    every = report_every_s or window_s
    horizon = settings.blackout_period_s + 4 * every + 60.0
    warm = converge(
        before, load, settings, window_s=window_s, duration_s=horizon, report_every_s=every
    ).settled_at
    if warm is None:
        return None
    change_at = math.ceil((warm + settings.blackout_period_s) / every) * every
    times, shares = _run(
        lambda at: before if at <= change_at + _EPSILON_S else after, load, settings,
        window_s=window_s, duration_s=change_at + 60.0, report_every_s=every,
    )  # fmt: skip
    kept = [(t, s) for t, s in zip(times, shares, strict=True) if t >= change_at]
    settled = _settled([t for t, _ in kept], [s for _, s in kept], after, tolerance)
    return None if settled is None else round(settled - change_at, 9)


def _run(
    capacity_at: Callable[[float], Mapping[str, float]],
    load: float,
    settings: OrcaSettings,
    *,
    window_s: float,
    duration_s: float,
    report_every_s: float,
) -> tuple[list[float], list[dict[str, float]]]:
    """The loop: reports every `report_every_s` (with the capacities of that moment),
    weights read every `window_s`."""
    keys = list(capacity_at(0.0))
    weights = {k: OrcaWeight(settings) for k in keys}
    share = dict.fromkeys(keys, 1 / len(keys))
    times, shares = [], []
    next_report = report_every_s
    for step in range(1, round(duration_s / window_s) + 1):
        now = step * window_s
        while next_report <= now + _EPSILON_S:
            capacity = capacity_at(next_report)
            for key, weight in weights.items():
                rps = load * share[key]
                weight.update(next_report, rps, 0.0, rps / capacity[key])
            next_report += report_every_s
        scheduled = scheduler_weights([weights[k].get(now) for k in keys])
        share = {k: w / sum(scheduled) for k, w in zip(keys, scheduled, strict=True)}
        times.append(now)
        shares.append(share)
    return times, shares


def converge_adaptive(
    capacity: Mapping[str, float],
    load: float,
    settings: AdaptiveSettings = DEFAULT_ADAPTIVE,
    *,
    report_every_s: float = 1.0,
    duration_s: float = 120.0,
    tolerance: float = 0.02,
) -> Convergence:
    """xdscp's computed weights, registered equal: the same loop, with the weights pushed
    at most every `min_push_interval_s` and every client following them."""
    adaptive = AdaptiveWeights(settings, dict.fromkeys(capacity, 1))
    weights = dict.fromkeys(capacity, 1.0)
    times, shares = [], []
    for step in range(1, int(duration_s / report_every_s) + 1):
        now = step * report_every_s
        share = {k: w / sum(weights.values()) for k, w in weights.items()}
        for key in capacity:
            rps = load * share[key]
            adaptive.observe(LoadSample(key, now, rps, rps / capacity[key]))
        push = adaptive.decide(now)
        if push is not None:
            weights = {k: float(w) for k, w in push.weights.items()}
        times.append(now)
        shares.append({k: w / sum(weights.values()) for k, w in weights.items()})
    return Convergence(times, shares, _settled(times, shares, capacity, tolerance))


def _settled(
    times: list[float],
    shares: list[dict[str, float]],
    capacity: Mapping[str, float],
    tolerance: float,
) -> float | None:
    total = sum(capacity.values())
    target = {k: c / total for k, c in capacity.items()}
    settled = None
    for now, share in zip(times, shares, strict=True):
        close = all(abs(share[k] - target[k]) <= tolerance for k in capacity)
        settled = (settled if settled is not None else now) if close else None
    return settled
