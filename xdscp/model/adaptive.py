"""`adaptive_weights`: a service's endpoint weights computed by xdscp from their load.

A part of `BalancingPolicy` like the resilience policies (None = off; `from_mapping` /
`to_mapping`, errors naming `adaptive_weights.FIELD`). It is valid for the policies whose
clients honour endpoint weights: `weighted_round_robin`, `weighted_random`, `least_request`
(Envoy only: gRPC's least request ignores endpoint weights), `ring_hash`, `maglev` and
`source_ip_hash` (a hash policy's keys move with the weights). `round_robin` and `random`
send no weight a client would use, and `client_side_weighted_round_robin`'s clients weigh by
the backends' own reports, so the part is refused there.

Durations are seconds or `250ms` / `10s` / `1m`. How the weights follow the load is
`xdscp.load.adaptive`'s work; this is only what a policy says.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdscp.model.checks import check_float
from xdscp.model.resilience import Policy, parse_duration

MAX_PUSH_INTERVAL_S = 3600.0
MAX_STALE_AFTER_S = 86400.0


@dataclass(frozen=True, slots=True)
class AdaptiveSettings(Policy):
    """How the computed weights follow the load.

    `smoothing`: the newest capacity estimate's share of the smoothed one; `max_step`: a
    weight moves at most that many times up or down per push; `floor`: no weight below that
    fraction of the mean; `hysteresis`: nothing is pushed while every weight would move by
    less than that fraction; `stale_after`: an endpoint not reporting for that long returns
    to its registered weight; `error_penalty`: gRFC A58's `error_utilization_penalty`.
    """

    min_push_interval: float = 10.0
    smoothing: float = 0.5
    max_step: float = 2.0
    floor: float = 0.05
    hysteresis: float = 0.1
    stale_after: float = 30.0
    error_penalty: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "min_push_interval", _seconds("min_push_interval", self.min_push_interval,
                                                 0.0, MAX_PUSH_INTERVAL_S))  # fmt: skip
        set_(self, "stale_after", _seconds("stale_after", self.stale_after, 1.0,
                                           MAX_STALE_AFTER_S))  # fmt: skip
        set_(self, "smoothing", check_float("smoothing", self.smoothing, 0.01, 1.0))
        set_(self, "max_step", check_float("max_step", self.max_step, 1.01, 100.0))
        set_(self, "floor", check_float("floor", self.floor, 0.0, 1.0))
        set_(self, "hysteresis", check_float("hysteresis", self.hysteresis, 0.0, 1.0))
        set_(self, "error_penalty", check_float("error_penalty", self.error_penalty, 0.0, 100.0))

    @property
    def min_push_interval_s(self) -> float:
        """`min_push_interval` in seconds (the load loop's name)."""
        return self.min_push_interval

    @property
    def stale_after_s(self) -> float:
        """`stale_after` in seconds (the load loop's name)."""
        return self.stale_after


def _seconds(name: str, value: object, low: float, high: float) -> float:
    seconds = parse_duration(name, value)
    return check_float(name, seconds, low, high)
