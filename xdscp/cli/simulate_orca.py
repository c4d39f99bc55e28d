"""`xdscp simulate` for `client_side_weighted_round_robin`: the shares the clients converge to
when each endpoint reports its load against a capacity, and how fast they get there.

A backend reporting utilization = rate / capacity gets the weight rate / utilization = its
capacity from every client, whatever share of the load it receives, so the converged shares
are the capacities' shares. The picks are those of the client's scheduler over those weights
(Envoy's EDF; gRPC's scheduler, drawn here as weighted round robin: the same shares). The time
comes from `xdscp.balancer.load_aware.converge`: the weights count once reports have come for
the blackout period, and are recomputed every weight update period; reports come with each
response, or every out-of-band period.
"""

from __future__ import annotations

import math
from typing import Any

from xdscp.balancer.load_aware import OrcaSettings, converge
from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, ClientSideWrr

TOLERANCE = 0.02


def parse_capacity(value: object, where: str = "capacity") -> float:
    """A capacity in requests/s: a finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(where, f"must be requests/s above 0, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValidationError(where, f"must be requests/s above 0, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(where, f"must be requests/s above 0, got {value!r}")
    return number


def capacities(document: dict[str, Any], flags: tuple[str, ...]) -> dict[str, float]:
    """`ip:port` → requests/s, from the file's `capacities:` and `--capacity` flags."""
    found: dict[str, float] = dict(document.get("capacities") or {})
    for flag in flags:
        key, sep, value = flag.rpartition("=")
        if not sep or not key:
            raise ValidationError("capacity", f"expected IP:PORT=RPS, got {flag!r}")
        found[key] = parse_capacity(value)
    return found


def _settings(policy: BalancingPolicy) -> ClientSideWrr:
    return policy.client_side_wrr or ClientSideWrr()


def orca_settings(settings: ClientSideWrr) -> OrcaSettings:
    """The reference model's settings from the policy's."""
    return OrcaSettings(
        blackout_period_s=settings.blackout_period,
        weight_expiration_period_s=settings.weight_expiration_period,
        weight_update_period_s=settings.weight_update_period,
        error_utilization_penalty=settings.error_utilization_penalty,
    )


def report_interval(settings: ClientSideWrr) -> float:
    """How often a client gets a report of each endpoint: every out-of-band period, or with
    the responses (under load, at least once per weight update)."""
    if settings.enable_oob_load_report:
        return settings.oob_reporting_period
    return settings.weight_update_period


def convergence_note(policy: BalancingPolicy, capacity: dict[str, float]) -> str:
    """When the shares reach the capacities' (within 2 %), and why then."""
    settings = _settings(policy)
    every = report_interval(settings)
    model = orca_settings(settings)
    load = sum(capacity.values()) / 2
    horizon = settings.blackout_period + 4 * every + 60.0
    settled = converge(
        capacity, load, model, window_s=settings.weight_update_period,
        duration_s=horizon, report_every_s=every, tolerance=TOLERANCE,
    ).settled_at  # fmt: skip
    reports = (
        f"out-of-band reports every {every:g} s"
        if settings.enable_oob_load_report
        else "a report with each response"
    )
    when = "never" if settled is None else f"{settled:g} s after the first requests"
    return (
        f"converged shares (weights = capacities) reached {when}: blackout"
        f" {settings.blackout_period:g} s, weights updated every"
        f" {settings.weight_update_period:g} s, {reports}; the shares follow a later change of"
        f" capacity within one report and one update (no new blackout)"
    )


NO_CAPACITY = (
    "no capacities given: every endpoint weighs the same until load reports arrive"
    " (give --capacity IP:PORT=RPS per endpoint, or capacities: in --file)"
)
