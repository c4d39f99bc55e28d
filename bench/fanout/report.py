"""Report arithmetic: medians, ratios to the baseline, the printed table. Pure functions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

BASELINE = "baseline"


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def change_seconds(t_trigger: float, t_last_ack: float) -> float:
    """Trigger to the last stream's ACK; a negative span means clocks or events are wrong."""
    span = t_last_ack - t_trigger
    if span < 0:
        raise ValueError(f"last ACK {t_last_ack} precedes the trigger {t_trigger}")
    return span


def summarize(
    server: str,
    streams: int,
    *,
    initial_s: float,
    changes_s: Sequence[float],
    spreads_s: Sequence[float] = (),
    cpu_initial_s: float,
    cpu_changes_s: Sequence[float],
    memory: dict[str, float],
) -> dict[str, Any]:
    """One (server, N) result with the medians of the repeated changes."""
    return {
        "server": server,
        "n": streams,
        "initial_s": initial_s,
        "change_s": median(changes_s),
        "changes_s": list(changes_s),
        "spread_s": median(spreads_s),
        "cpu_initial_s": cpu_initial_s,
        "cpu_change_s": median(cpu_changes_s),
        "rss_mib": memory.get("rss_mib", math.nan),
        "hwm_mib": memory.get("hwm_mib", math.nan),
    }


def ratio(value: float, baseline: float | None) -> float | None:
    """value / baseline, None when there is no usable baseline."""
    if baseline is None or not baseline > 0 or math.isnan(value):
        return None
    return value / baseline


def with_baseline(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each result plus `vs_baseline`: its figures divided by the baseline's at the same N."""
    base = {r["n"]: r for r in results if r["server"] == BASELINE}
    out = []
    for result in results:
        reference = base.get(result["n"])
        keys = (
            "initial_s",
            "change_s",
            "spread_s",
            "cpu_initial_s",
            "cpu_change_s",
            "rss_mib",
            "hwm_mib",
        )
        vs = {k: ratio(result[k], reference[k] if reference else None) for k in keys}
        out.append({**result, "vs_baseline": vs})
    return out


def _cell(value: float, factor: float | None, scale: float, digits: int) -> str:
    text = "-" if math.isnan(value) else f"{value * scale:.{digits}f}"
    return text if factor is None else f"{text} (x{factor:.2f})"


COLUMNS = (
    ("initial s", "initial_s", 1.0, 3),
    ("change ms", "change_s", 1000.0, 1),
    ("spread ms", "spread_s", 1000.0, 1),
    ("cpu init s", "cpu_initial_s", 1.0, 2),
    ("cpu/change s", "cpu_change_s", 1.0, 3),
    ("RSS MiB", "rss_mib", 1.0, 0),
    ("peak MiB", "hwm_mib", 1.0, 0),
)


def table(results: Sequence[dict[str, Any]]) -> str:
    """A text table; every non-baseline figure followed by (x ratio to the baseline)."""
    rows = [["server", "N", *(c[0] for c in COLUMNS)]]
    for result in with_baseline(results):
        own = result["server"] == BASELINE
        rows.append(
            [result["server"], str(result["n"])]
            + [
                _cell(result[key], None if own else result["vs_baseline"][key], scale, digits)
                for _, key, scale, digits in COLUMNS
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def others_cores(busy_s: float, ours_s: float, wall_s: float) -> float:
    """Average cores used by processes other than the benchmark's during a run (>= 0).

    `busy_s`: the machine's non-idle CPU seconds over the run; `ours_s`: the server's,
    the generator's and the orchestrator's CPU seconds over the same run.
    """
    if wall_s <= 0:
        raise ValueError(f"wall time {wall_s} must be positive")
    return max(busy_s - ours_s, 0.0) / wall_s
