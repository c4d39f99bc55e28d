"""Load: what endpoints report about their load, and the weights xdscp computes from it.

Sans I/O: `samples` (one endpoint's load over an interval, and whether it can be believed)
and `adaptive` (one service's weights, following the reported capacities with smoothing, a
bounded step, a floor, hysteresis, a minimum interval and a fall-back to the registered
weights). The load reports that feed it (LRS, registrations) arrive in later stages.
"""

from xdscp.load.adaptive import RESOLUTION, AdaptiveSettings, AdaptiveWeights, WeightPush
from xdscp.load.samples import MAX_RPS, MAX_UTILIZATION, LoadSample, capacity_of, implausible

__all__ = [
    "MAX_RPS",
    "MAX_UTILIZATION",
    "RESOLUTION",
    "AdaptiveSettings",
    "AdaptiveWeights",
    "LoadSample",
    "WeightPush",
    "capacity_of",
    "implausible",
]
