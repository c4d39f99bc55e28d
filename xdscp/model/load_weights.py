"""The settings of `client_side_weighted_round_robin`: weights that follow the endpoints' own
load reports (ORCA), computed by each client (gRFC A58; Envoy's `ClientSideWeightedRoundRobin`).

Pure data with validation, a nested part of `BalancingPolicy` like the resilience policies
(`from_mapping` / `to_mapping`, errors naming the field); the ranges are the ones Envoy and
gRPC accept, and a value a client would silently change (an update period under 100 ms) is
refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xdscp.errors import ValidationError
from xdscp.model.checks import check_float
from xdscp.model.resilience import Policy, parse_duration

# ORCA metric names Envoy can compute a utilization from (`<map>.<key>` reads a map's key).
ORCA_UTILIZATION_FIELDS = ("application_utilization", "cpu_utilization", "mem_utilization")
ORCA_METRIC_MAPS = ("named_metrics", "utilization", "request_cost")
_METRIC_KEY = re.compile(r"[\x21-\x7e]{1,256}")
MIN_WEIGHT_UPDATE_PERIOD = 0.1  # Envoy and gRPC clamp a shorter period up to 100 ms


def _metric_name(value: object) -> str:
    """One `metric_names_for_computing_utilization` entry, checked."""
    if isinstance(value, str):
        prefix, dot, key = value.partition(".")
        if value in ORCA_UTILIZATION_FIELDS or (
            dot and prefix in ORCA_METRIC_MAPS and _METRIC_KEY.fullmatch(key)
        ):
            return value
    maps = ", ".join(f"{m}.KEY" for m in ORCA_METRIC_MAPS)
    raise ValidationError(
        "metric_names_for_computing_utilization",
        f"each must be one of {', '.join(ORCA_UTILIZATION_FIELDS)}, {maps}; got {value!r}",
    )


@dataclass(frozen=True, slots=True)
class ClientSideWrr(Policy):
    """The settings of `client_side_weighted_round_robin` (gRFC A58; Envoy's
    `ClientSideWeightedRoundRobin`), with their defaults.

    Each client weighs an endpoint by its ORCA reports: `qps / (utilization + eps / qps *
    error_utilization_penalty)`, used once reports have come for `blackout_period` and until
    none came for `weight_expiration_period`, recomputed every `weight_update_period`.
    `enable_oob_load_report` asks the backends' OpenRcaService for a report every
    `oob_reporting_period` instead of reading each response. `metric_names_for_computing_
    utilization` is Envoy's alone: the utilization when `application_utilization` is unset.
    """

    blackout_period: float = 10.0
    weight_expiration_period: float = 180.0
    weight_update_period: float = 1.0
    error_utilization_penalty: float = 1.0
    metric_names_for_computing_utilization: tuple[str, ...] = ()
    enable_oob_load_report: bool = False
    oob_reporting_period: float = 10.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "blackout_period", parse_duration("blackout_period", self.blackout_period))
        expiration = parse_duration(
            "weight_expiration_period", self.weight_expiration_period, positive=True
        )
        set_(self, "weight_expiration_period", expiration)
        update = parse_duration("weight_update_period", self.weight_update_period)
        if update < MIN_WEIGHT_UPDATE_PERIOD:
            raise ValidationError(
                "weight_update_period",
                f"must be at least 100ms (the clients' floor), got {self.weight_update_period!r}",
            )
        set_(self, "weight_update_period", update)
        penalty = check_float("error_utilization_penalty", self.error_utilization_penalty, 0, 1e6)
        set_(self, "error_utilization_penalty", penalty)
        self._check_metrics()
        if not isinstance(self.enable_oob_load_report, bool):
            raise ValidationError(
                "enable_oob_load_report",
                f"must be true or false, got {self.enable_oob_load_report!r}",
            )
        oob = parse_duration("oob_reporting_period", self.oob_reporting_period, positive=True)
        set_(self, "oob_reporting_period", oob)
        if self.enable_oob_load_report and oob >= expiration:
            raise ValidationError(
                "oob_reporting_period",
                f"must be shorter than weight_expiration_period ({expiration} s), or every"
                f" weight expires between two reports; got {oob} s",
            )

    def _check_metrics(self) -> None:
        names = self.metric_names_for_computing_utilization
        if isinstance(names, str):
            names = tuple(part.strip() for part in names.split(",") if part.strip())
        if not isinstance(names, list | tuple):
            raise ValidationError(
                "metric_names_for_computing_utilization", f"must be a list, got {names!r}"
            )
        object.__setattr__(
            self, "metric_names_for_computing_utilization", tuple(_metric_name(n) for n in names)
        )
