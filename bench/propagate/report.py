"""Percentiles per phase, the printed table and the targets' verdicts."""

from __future__ import annotations

import math
from typing import Any

ADDED_P50_TARGET_MS = 3.0
ADDED_P99_TARGET_MS = 15.0
SOVEREIGN_FACTOR = 10.0
MEASURES = (
    "watch_ms", "publish_ms", "snapshot_ms", "push_ms", "peer_watch_ms", "ack_ms", "added_ms",
    "first_ms", "watch_to_publish_ms", "publish_to_snapshot_ms", "snapshot_to_push_ms",
    "push_to_ack_ms", "peer_watch_to_ack_ms", "ack_to_first_ms",
)  # fmt: skip
# Per-change differences: (name, later measure, earlier measure).
DERIVED = (
    ("watch_to_publish_ms", "publish_ms", "watch_ms"),
    ("publish_to_snapshot_ms", "snapshot_ms", "publish_ms"),
    ("snapshot_to_push_ms", "push_ms", "snapshot_ms"),
    ("push_to_ack_ms", "ack_ms", "push_ms"),
    ("peer_watch_to_ack_ms", "ack_ms", "peer_watch_ms"),
    ("ack_to_first_ms", "first_ms", "ack_ms"),
)
LABELS = {
    "watch_ms": "write -> raw etcd watch (baseline)",
    "publish_ms": "write -> etcd source publishes",
    "snapshot_ms": "write -> snapshot in xdscp's cache",
    "push_ms": "write -> CLA response written by xdscp",
    "peer_watch_ms": "write -> the peer's own etcd watch",
    "ack_ms": "write -> Envoy's ACK at the server",
    "added_ms": "added: ACK - raw watch",
    "first_ms": "write -> first request served",
    "watch_to_publish_ms": "  of which raw watch -> source publishes",
    "publish_to_snapshot_ms": "  of which publish -> snapshot",
    "snapshot_to_push_ms": "  of which snapshot -> CLA written",
    "push_to_ack_ms": "  of which CLA written -> ACK",
    "peer_watch_to_ack_ms": "  of which peer's watch -> ACK",
    "ack_to_first_ms": "ACK -> first request served",
}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the same rule as bench/registry.py)."""
    ordered = sorted(v for v in values if math.isfinite(v))
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def summarize(server: str, samples: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """p50 / p99 / max of every measure present in the samples (and of their differences)."""
    for sample in samples:
        for name, later, earlier in DERIVED:
            if later in sample and earlier in sample:
                sample[name] = round(float(sample[later]) - float(sample[earlier]), 3)
    stats: dict[str, dict[str, float]] = {}
    for name in MEASURES:
        values = [float(s[name]) for s in samples if name in s]
        if values and any(math.isfinite(v) for v in values):
            stats[name] = {
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "max": percentile(values, 100),
            }
    return {"server": server, "changes": len(samples), "stats": stats, **extra,
            "samples": samples}  # fmt: skip


def table(phases: list[dict[str, Any]]) -> str:
    """One block per phase: p50, p99, max per measure, in milliseconds."""
    lines = []
    for phase in phases:
        if "error" in phase:
            lines.append(f"{phase['server']}: not measured ({phase['error']})")
            continue
        lines.append(f"{phase['server']} ({phase['changes']} changes)")
        lines.append(f"  {'ms':<40}{'p50':>10}{'p99':>10}{'max':>10}")
        for name, stat in phase["stats"].items():
            lines.append(
                f"  {LABELS[name]:<40}{stat['p50']:>10.2f}{stat['p99']:>10.2f}{stat['max']:>10.2f}"
            )
    return "\n".join(lines)


def _stat(phases: list[dict[str, Any]], server: str, name: str, pct: str) -> float:
    for phase in phases:
        if phase.get("server") == server and name in phase.get("stats", {}):
            return float(phase["stats"][name][pct])
    return float("nan")


def verdicts(phases: list[dict[str, Any]]) -> str:
    """The issue's targets against this run's figures."""
    p50 = _stat(phases, "xdscp", "added_ms", "p50")
    p99 = _stat(phases, "xdscp", "added_ms", "p99")
    ok50 = "holds" if p50 <= ADDED_P50_TARGET_MS else "MISSED"
    ok99 = "holds" if p99 <= ADDED_P99_TARGET_MS else "MISSED"
    lines = [
        f"xdscp added p50 {p50:.2f} ms (target <= {ADDED_P50_TARGET_MS}) {ok50}",
        f"xdscp added p99 {p99:.2f} ms (target <= {ADDED_P99_TARGET_MS}) {ok99}",
    ]
    ours = _stat(phases, "xdscp", "first_ms", "p50")
    theirs = _stat(phases, "sovereign", "first_ms", "p50")
    if math.isfinite(theirs):
        factor = theirs / ours
        verdict = "holds" if factor >= SOVEREIGN_FACTOR else "MISSED"
        lines.append(
            f"write -> first request p50: xdscp {ours:.1f} ms, sovereign {theirs:.1f} ms "
            f"(x{factor:.0f}; target >= x{SOVEREIGN_FACTOR:.0f}) {verdict}"
        )
    else:
        lines.append("sovereign not measured: the x10 target is not checked")
    go = _stat(phases, "go", "ack_ms", "p50")
    if math.isfinite(go):
        lines.append(
            f"write -> ACK p50 / p99: xdscp {_stat(phases, 'xdscp', 'ack_ms', 'p50'):.2f} / "
            f"{_stat(phases, 'xdscp', 'ack_ms', 'p99'):.2f} ms, go-control-plane {go:.2f} / "
            f"{_stat(phases, 'go', 'ack_ms', 'p99'):.2f} ms"
        )
    return "\n".join(lines)
