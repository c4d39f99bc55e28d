"""What a registrant says about its own load: `ReportedLoad`, carried by a registration.

A backend no client reports on (no LRS, no ORCA) can still have its weight follow its load:
it registers, and refreshes, its utilization (and, when it knows it, the requests per second
it serves), stamped with the wall-clock time it measured them. The values are checked here
(finite, not negative, not absurd); the registry refuses a bad load alone and keeps the
endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model.checks import check_float

MAX_REPORTED_UTILIZATION = 1e3  # ORCA utilizations may exceed 1 (application-defined), not this
MAX_REPORTED_RPS = 1e9
MAX_STAMP = 1e11  # seconds since the epoch: year ~5138
_FIELDS = ("utilization", "rps", "at")


@dataclass(frozen=True, slots=True)
class ReportedLoad:
    """A registrant's own load: `utilization` (its rate over its capacity, or its CPU),
    optionally `rps`, measured at `at` (seconds since the epoch)."""

    utilization: float
    rps: float | None = None
    at: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(
            self,
            "utilization",
            check_float("load.utilization", self.utilization, 0.0, MAX_REPORTED_UTILIZATION),
        )
        if self.rps is not None:
            set_(self, "rps", check_float("load.rps", self.rps, 0.0, MAX_REPORTED_RPS))
        set_(self, "at", check_float("load.at", self.at, 0.0, MAX_STAMP))  # fmt: skip

    @classmethod
    def from_mapping(cls, data: object) -> ReportedLoad:
        """From `{"utilization": U, "rps": R, "at": T}`; `ValidationError` naming `load.*`."""
        if not isinstance(data, Mapping):
            raise ValidationError(
                "load", f'must be an object like {{"utilization": 0.5}}, got {data!r}'
            )
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise ValidationError(
                "load", f"unknown fields {unknown}; allowed: {', '.join(_FIELDS)}"
            )
        if "utilization" not in data:
            raise ValidationError("load.utilization", "is required")
        return cls(data["utilization"], data.get("rps"), data.get("at", 0.0))

    def to_mapping(self) -> dict[str, Any]:
        """The JSON form (`rps` only when known)."""
        out: dict[str, Any] = {"utilization": self.utilization}
        if self.rps is not None:
            out["rps"] = self.rps
        out["at"] = self.at
        return out
