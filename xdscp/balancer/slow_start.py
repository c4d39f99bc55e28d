"""Envoy's slow start (load_balancer_impl.cc: EdfLoadBalancerBase::applySlowStartFactor).

A host that joined (or last passed a health check) less than `window` ago weighs
`weight * max(min_weight_percent / 100, time_factor ** (1 / aggression))`, with
`time_factor = max(age_ms, 1) / window_ms` in whole milliseconds. Only healthy hosts ramp;
round robin and least request only. While any host of a source is in its window, Envoy's round
robin uses its EDF scheduler even when the registered weights are equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdscp.errors import ValidationError


@dataclass(frozen=True, slots=True)
class SlowStart:
    """`slow_start_config`: window (seconds), aggression, min weight percent."""

    window: float
    aggression: float = 1.0
    min_weight_percent: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValidationError("slow_start.window", f"must be > 0 s, got {self.window}")
        if not (math.isfinite(self.aggression) and self.aggression > 0):
            raise ValidationError("slow_start.aggression", f"must be > 0, got {self.aggression}")
        if not 0.0 <= self.min_weight_percent <= 100.0:
            raise ValidationError(
                "slow_start.min_weight_percent",
                f"must be in [0, 100], got {self.min_weight_percent}",
            )


def in_window(age: float | None, config: SlowStart) -> bool:
    """True when a host `age` seconds old is still ramping (None: joined long ago)."""
    return age is not None and int(age * 1000) < round(config.window * 1000)


def slow_start_factor(age: float | None, config: SlowStart) -> float:
    """The factor a healthy host `age` seconds after joining multiplies its weight by."""
    if not in_window(age, config):
        return 1.0
    assert age is not None  # noqa: S101 - narrowed by in_window
    time_factor = max(int(age * 1000), 1) / round(config.window * 1000)
    if config.aggression != 1.0 and time_factor != 1.0:
        time_factor = time_factor ** (1.0 / config.aggression)
    return max(time_factor, config.min_weight_percent / 100.0)


def slow_start_weight(weight: float, age: float | None, config: SlowStart | None) -> float:
    """`weight` scaled by the slow-start factor (unchanged without slow start)."""
    return weight if config is None else weight * slow_start_factor(age, config)
