"""One endpoint's health verdict from a stream of check results: sans I/O.

The rules (Envoy's, with an unknown start that keeps serving):

- a new endpoint is `UNKNOWN`: nothing is known, it keeps the health it was registered with;
- `unhealthy_threshold` consecutive failures make it `UNHEALTHY` (from `UNKNOWN` or `HEALTHY`);
- from `UNHEALTHY`, `healthy_threshold` consecutive successes make it `HEALTHY`; from
  `UNKNOWN`, one success does (as Envoy's first check of a new host);
- a result of the other kind resets the streak; nothing else changes a verdict.

`observe` is a pure function of the state, the result and the thresholds: the prober
(`checker.py`) feeds it and acts on the returned `Transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What the checks concluded about one endpoint."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Consecutive results needed to change a verdict (both >= 1)."""

    healthy: int = 2
    unhealthy: int = 3

    def __post_init__(self) -> None:
        if self.healthy < 1 or self.unhealthy < 1:
            raise ValueError(f"thresholds must be >= 1, got {self}")


@dataclass(frozen=True, slots=True)
class EndpointState:
    """A verdict and the current streak (`successes` or `failures`, never both non-zero)."""

    verdict: Verdict = Verdict.UNKNOWN
    successes: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """A verdict that changed with one result."""

    before: Verdict
    after: Verdict


def observe(
    state: EndpointState, ok: bool, thresholds: Thresholds
) -> tuple[EndpointState, Transition | None]:
    """The state after one check result, and the transition it caused (None: no change)."""
    if ok:
        streak = EndpointState(state.verdict, successes=state.successes + 1)
        needed = thresholds.healthy if state.verdict is Verdict.UNHEALTHY else 1
        if state.verdict is not Verdict.HEALTHY and streak.successes >= needed:
            return EndpointState(Verdict.HEALTHY), Transition(state.verdict, Verdict.HEALTHY)
        if state.verdict is Verdict.HEALTHY:
            streak = EndpointState(Verdict.HEALTHY)  # a healthy endpoint keeps no streak
        return streak, None
    streak = EndpointState(state.verdict, failures=state.failures + 1)
    if state.verdict is not Verdict.UNHEALTHY and streak.failures >= thresholds.unhealthy:
        return EndpointState(Verdict.UNHEALTHY), Transition(state.verdict, Verdict.UNHEALTHY)
    if state.verdict is Verdict.UNHEALTHY:
        streak = EndpointState(Verdict.UNHEALTHY)  # an unhealthy one keeps no failure streak
    return streak, None
