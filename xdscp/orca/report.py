"""`LoadReport`: one backend's load, checked against what the ORCA proto allows.

The bounds are the ones `xds.data.orca.v3.OrcaLoadReport` documents (its validate rules):
`cpu_utilization`, `application_utilization`, `rps_fractional` and `eps` are finite and >= 0
(CPU may exceed 1 on a machine with several cores busy), `mem_utilization` and every value of
`utilization` lie in [0, 1]; `request_cost` and `named_metrics` are any finite number. Metric
names are tokens (letters, digits, `_`, `-`, `.`, `/`; at most 128 characters) so every header
format carries them without quoting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from xds.data.orca.v3 import orca_load_report_pb2

from xdscp.errors import ValidationError

_NAME = re.compile(r"[A-Za-z0-9_./-]{1,128}")
_MAX_NAMED = 64
_EXPLICIT_ZERO = bytes([6 << 3 | 1]) + bytes(8)  # field 6 (rps_fractional), a 64-bit 0.0
_UNBOUNDED = (-math.inf, math.inf)
_NON_NEGATIVE = (0.0, math.inf)
_FRACTION = (0.0, 1.0)
_SCALARS = {
    "cpu_utilization": _NON_NEGATIVE,
    "mem_utilization": _FRACTION,
    "application_utilization": _NON_NEGATIVE,
    "rps_fractional": _NON_NEGATIVE,
    "eps": _NON_NEGATIVE,
}
_MAPS = {"utilization": _FRACTION, "request_cost": _UNBOUNDED, "named_metrics": _UNBOUNDED}


def _check(name: str, value: object, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, f"must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValidationError(name, f"must be finite, got {number}")
    low, high = bounds
    if not low <= number <= high:
        wanted = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValidationError(name, f"must be {wanted}, got {number!r}")
    return number


def _check_map(name: str, values: Mapping[str, float], bounds: tuple[float, float]) -> None:
    if len(values) > _MAX_NAMED:
        raise ValidationError(name, f"at most {_MAX_NAMED} metrics, got {len(values)}")
    for key, value in values.items():
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise ValidationError(
                f"{name}[{key!r}]", "a metric name is 1-128 of A-Z a-z 0-9 _ . / -"
            )
        _check(f"{name}[{key}]", value, bounds)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a backend reports about its load (ORCA's `OrcaLoadReport`), validated.

    Clients' weighted round robin (Envoy's `client_side_weighted_round_robin`, gRPC's
    `weighted_round_robin`) weigh an endpoint by
    `rps_fractional / (utilization + eps / rps_fractional * penalty)`, where utilization is
    `application_utilization` when it is above 0 and `cpu_utilization` otherwise.
    A zero field is the proto's "unset". Raises `ValidationError` on a value the proto's
    rules refuse (NaN, infinite, negative, a fraction above 1).
    """

    cpu_utilization: float = 0.0
    mem_utilization: float = 0.0
    application_utilization: float = 0.0
    rps_fractional: float = 0.0
    eps: float = 0.0
    utilization: Mapping[str, float] = field(default_factory=dict)
    request_cost: Mapping[str, float] = field(default_factory=dict)
    named_metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, bounds in _SCALARS.items():
            object.__setattr__(self, name, _check(name, getattr(self, name), bounds))
        for name, bounds in _MAPS.items():
            values = getattr(self, name)
            if not isinstance(values, Mapping):
                raise ValidationError(name, f"must be a mapping, got {type(values).__name__}")
            _check_map(name, values, bounds)
            frozen = {key: float(value) for key, value in values.items()}
            object.__setattr__(self, name, MappingProxyType(frozen))

    def __hash__(self) -> int:
        maps = tuple(tuple(sorted(getattr(self, name).items())) for name in _MAPS)
        return hash((*(getattr(self, name) for name in _SCALARS), *maps))

    def to_proto(self) -> orca_load_report_pb2.OrcaLoadReport:
        """This report as `xds.data.orca.v3.OrcaLoadReport`."""
        message = orca_load_report_pb2.OrcaLoadReport(
            **{name: getattr(self, name) for name in _SCALARS}
        )
        for name in _MAPS:
            getattr(message, name).update(getattr(self, name))
        return message

    @classmethod
    def from_proto(cls, message: orca_load_report_pb2.OrcaLoadReport) -> LoadReport:
        """A report from the proto (the deprecated integer `rps` is ignored); validated."""
        return cls(
            cpu_utilization=message.cpu_utilization,
            mem_utilization=message.mem_utilization,
            application_utilization=message.application_utilization,
            rps_fractional=message.rps_fractional,
            eps=message.eps,
            utilization=dict(message.utilization),
            request_cost=dict(message.request_cost),
            named_metrics=dict(message.named_metrics),
        )

    def serialize(self) -> bytes:
        """The serialized `OrcaLoadReport` (deterministic: maps in key order), never empty.

        An all-zero report serializes to no bytes at all, which Envoy refuses ("ORCA binary
        header value is empty"); it is spelled with an explicit `rps_fractional` of 0 instead.
        """
        data: bytes = self.to_proto().SerializeToString(deterministic=True)
        return data or _EXPLICIT_ZERO


def scalar_fields() -> tuple[str, ...]:
    """The report's number fields, in the proto's order of meaning."""
    return tuple(_SCALARS)


def map_fields() -> tuple[str, ...]:
    """The report's named-metric maps."""
    return tuple(_MAPS)
