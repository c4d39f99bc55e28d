"""Health the control plane checks itself: between the sources and the translation.

For services whose policy says `health_check.control_plane: true`, xdscp checks every
endpoint (gRPC health, HTTP GET, TCP connect) and serves the failing ones UNHEALTHY to every
client (`HealthStage.services`); with etcd, the replicas elect one checker and share its
verdicts. The state machine (`machine`), the targets and the overlay (`targets`) and the
etcd layout (`results`) are sans I/O; `probes`, `checker`, `election` and `stage` do the I/O.
"""

from xdscp.health.checker import Checker, ResultSink
from xdscp.health.election import Election
from xdscp.health.machine import EndpointState, Thresholds, Transition, Verdict, observe
from xdscp.health.metrics import HealthMetrics
from xdscp.health.probes import Prober, ProbeResult
from xdscp.health.results import (
    HealthLayout,
    encode_result,
    health_prefix,
    parse_result,
)
from xdscp.health.stage import HealthCoordination, HealthStage
from xdscp.health.targets import (
    HealthOverlay,
    Target,
    TargetKey,
    check_of,
    targets_of,
    with_verdicts,
)

__all__ = [
    "Checker",
    "Election",
    "EndpointState",
    "HealthCoordination",
    "HealthLayout",
    "HealthMetrics",
    "HealthOverlay",
    "HealthStage",
    "ProbeResult",
    "Prober",
    "ResultSink",
    "Target",
    "TargetKey",
    "Thresholds",
    "Transition",
    "Verdict",
    "check_of",
    "encode_result",
    "health_prefix",
    "observe",
    "parse_result",
    "targets_of",
    "with_verdicts",
]
