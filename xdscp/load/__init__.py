"""Load: what endpoints report about their load, and the weights xdscp computes from it.

Sans I/O: `samples` (one endpoint's load over an interval, and whether it can be believed)
`reports` (many clients' LRS reports summed into one sample per endpoint, bounded) and
`adaptive` (one service's weights, following the reported capacities with smoothing, a
bounded step, a floor, hysteresis, a minimum interval and a fall-back to the registered
weights); `overlay` (the services as served with every adaptive service's computed weights: its
loop fed by client samples and by the endpoints' own registered load); `wire` decodes LRS's
protobuf; `lrs` is the LRS stream (sans I/O) and its grpc.aio edge, which `xdscp serve` serves on
the xDS port into the plane's load book (`plane/load.py`); `fleet` is the record replicas share
their books' load in, checked as hostile, and the other replicas' load held
(`plane/shared_load.py` writes and watches it in etcd).
"""

from xdscp.load.adaptive import RESOLUTION, AdaptiveWeights, WeightPush, whole_weights
from xdscp.load.overlay import LoadSamples, Samples, WeightOverlay
from xdscp.load.reports import EndpointLoad, LoadBook, LoadReport
from xdscp.load.samples import MAX_RPS, MAX_UTILIZATION, LoadSample, capacity_of, implausible
from xdscp.model import AdaptiveSettings  # the policy part the loop reads

__all__ = [
    "MAX_RPS",
    "MAX_UTILIZATION",
    "RESOLUTION",
    "AdaptiveSettings",
    "AdaptiveWeights",
    "EndpointLoad",
    "LoadBook",
    "LoadReport",
    "LoadSample",
    "LoadSamples",
    "Samples",
    "WeightOverlay",
    "WeightPush",
    "capacity_of",
    "implausible",
    "whole_weights",
]
