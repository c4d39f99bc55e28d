"""What a load report says about one endpoint, and whether it can be believed.

A `LoadSample` is one endpoint's load over one reporting interval, whatever carried it (an LRS
report from a client, an ORCA utilization propagated into it, or a registration's own
utilization): the requests per second it served, the errors per second among them, and the
utilization the backend reported. `implausible` says why a sample must be ignored; an ignored
sample changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_RPS = 1e9  # no endpoint serves more; a report above it is garbage
MAX_UTILIZATION = 1e3  # ORCA utilizations may exceed 1 (application-defined), not this


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One endpoint's load over a reporting interval, seen at `at` (monotonic seconds);
    `since`: when the interval began (None: not known, as for a registered load)."""

    endpoint: str
    at: float
    rps: float
    utilization: float
    eps: float = 0.0
    since: float | None = None


def implausible(sample: LoadSample) -> str | None:
    """Why `sample` cannot be used (a one-line reason), or None when it can."""
    values = {"at": sample.at, "rps": sample.rps, "utilization": sample.utilization,
              "eps": sample.eps}  # fmt: skip
    for name, value in values.items():
        if not math.isfinite(value):
            return f"{name} is {value}"
        if value < 0:
            return f"{name} is negative ({value})"
    return _out_of_range(sample)


def _out_of_range(sample: LoadSample) -> str | None:
    if sample.rps > MAX_RPS:
        return f"rps {sample.rps} is above {MAX_RPS:g}"
    if sample.eps > sample.rps:
        return f"eps {sample.eps} is above rps {sample.rps}"
    if sample.utilization > MAX_UTILIZATION:
        return f"utilization {sample.utilization} is above {MAX_UTILIZATION:g}"
    if sample.rps == 0 or sample.utilization == 0:
        return "no traffic or no utilization: nothing to learn the capacity from"
    return None


def capacity_of(sample: LoadSample, error_penalty: float) -> float:
    """The requests per second the endpoint would serve at utilization 1: gRFC A58's weight,
    `qps / (utilization + eps / qps * error_utilization_penalty)`, of a plausible sample."""
    return sample.rps / (sample.utilization + sample.eps / sample.rps * error_penalty)
