"""What the demo prints for its load-aware and adaptive steps: per capacity setting, each
backend's capacity (and, adaptive, the weight xdscp computed) and measured share beside the
predicted one (bars as the strategies' tables), and how long the weights took to follow,
beside the model's seconds; and the same as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from xdscp.demo.adaptive import AdaptiveOutcome, AdaptivePhase
from xdscp.demo.load import CHANGED, SHARE_BOUND, LoadOutcome, LoadPhase
from xdscp.model import parse_host_port

BAR_WIDTH = 18  # one column more than the strategies' tables: 80 columns in all


def _bar(share: float, style: str, char: str) -> Text:
    cells = round(share * BAR_WIDTH)
    return Text(char * cells, style=style) + Text(" " * (BAR_WIDTH - cells))


def _ratio(capacities: Mapping[str, float]) -> str:
    low = min(capacities.values())
    return " : ".join(f"{c / low:g}" for _, c in sorted(capacities.items()))


def _caption(phase: LoadPhase) -> str:
    mark = "[green]✓[/]" if phase.ok else "[red]✗ prediction missed[/]"
    model = "never" if phase.model_seconds is None else f"{phase.model_seconds:.1f} s"
    errors = f"; {phase.errors} requests got no backend" if phase.errors else ""
    return (
        f"{mark} {phase.requests} requests, each share within ±{100 * SHARE_BOUND:g} %{errors};"
        " Envoy's weights reached"
        f" the capacities' ratios after {phase.warmup} requests, {phase.seconds:.1f} s"
        f" (reference model: {model})"
    )


def _title(outcome: LoadOutcome, index: int) -> str:
    phase = outcome.phases[index]
    if index == 0:
        what = f"weights 1, capacities {_ratio(phase.capacities)}"
    else:
        name, rps = CHANGED
        what = f"{name} now {rps:g}/s, capacities {_ratio(phase.capacities)}"
    return f"\\[load {index + 1}/2] {outcome.policy.lb}: {what}"


def load_table(outcome: LoadOutcome) -> list[Table]:
    """One table per capacity setting: capacity, measured and predicted share per backend."""
    return [
        _phase_table(_title(outcome, index), _caption(phase), phase, "requests")
        for index, phase in enumerate(outcome.phases)
    ]


def _phase_table(title: str, caption: str, phase: LoadPhase | AdaptivePhase, third: str) -> Table:
    """Capacity, `third` (the requests each backend answered, or the weight xdscp served),
    measured and predicted share per backend, with a bar of each."""
    result = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAD)
    for column in ("backend", "capacity", third, "measured", "predicted"):
        result.add_column(column, justify="left" if column == "backend" else "right")
    result.add_column(
        "[green]█[/] measured\n[dim]░[/] predicted", min_width=BAR_WIDTH, no_wrap=True
    )
    for row in sorted(phase.rows, key=lambda r: r.name):
        share = row.measured / phase.requests
        result.add_row(
            f"{row.name} :{parse_host_port(row.endpoint)[1]}",
            f"{phase.capacities[row.name]:g}/s",
            str(row.measured if third == "requests" else row.weight),
            f"{100 * share:.1f} %",
            f"{100 * row.predicted:.1f} %",
            Group(_bar(share, "green", "█"), _bar(row.predicted, "dim", "░")),
        )
    return result


def load_summary(outcome: LoadOutcome) -> str:
    """One line: whether both settings matched, and how long the step took."""
    return _summary(outcome, "load-aware step")


def _summary(outcome: LoadOutcome | AdaptiveOutcome, step: str) -> str:
    mark = "[green]✓[/]" if outcome.ok else "[red]✗[/]"
    matched = sum(1 for p in outcome.phases if p.ok)
    return (
        f"{mark} {matched}/2 capacity settings matched the prediction ({step},"
        f" {outcome.seconds:.1f} s)"
    )


def load_json(outcome: LoadOutcome | None) -> dict[str, Any] | None:
    """The step's results for tests and CI (None: the step did not run)."""
    if outcome is None:
        return None
    return {
        "policy": str(outcome.policy.lb),
        "ok": outcome.ok,
        "bound": SHARE_BOUND,
        "seconds": outcome.seconds,
        "phases": [
            {
                "capacities": dict(p.capacities),
                "requests": p.requests,
                "errors": p.errors,
                "warmup_requests": p.warmup,
                "seconds": p.seconds,
                "model_seconds": p.model_seconds,
                "ok": p.ok,
                "backends": [
                    {
                        "name": r.name,
                        "endpoint": r.endpoint,
                        "weight": r.weight,
                        "measured": r.measured,
                        "predicted": r.predicted,
                    }
                    for r in p.rows
                ],
            }
            for p in outcome.phases
        ],
    }


def _adaptive_caption(phase: AdaptivePhase, index: int) -> str:
    mark = "[green]✓[/]" if phase.ok else "[red]✗ prediction missed[/]"
    model = "never" if phase.model_seconds is None else f"{phase.model_seconds:.1f} s"
    errors = f"; {phase.errors} requests got no backend" if phase.errors else ""
    since = "the policy was set" if index == 0 else "the change"
    pushes = f"{phase.pushes} push{'es' if phase.pushes != 1 else ''}"
    return (
        f"{mark} {phase.requests} requests, each share within ±{100 * SHARE_BOUND:g} %"
        f"{errors}; xdscp's weights, in Envoy, reached the capacities' shares"
        f" {phase.seconds:.1f} s after {since}, {pushes} (xdscp's loop: {model})"
    )


def _adaptive_title(outcome: AdaptiveOutcome, index: int) -> str:
    phase = outcome.phases[index]
    what = f"capacities {_ratio(phase.capacities)}"
    if index > 0:
        name, rps = CHANGED
        what = f"{name} now {rps:g}/s"  # the capacity column shows the ratios
    return f"\\[adaptive {index + 1}/2] {outcome.policy.lb} + adaptive_weights: {what}"


def adaptive_table(outcome: AdaptiveOutcome) -> list[Table]:
    """One table per capacity setting: capacity, xdscp's weight, measured and predicted
    share per backend."""
    return [
        _phase_table(
            _adaptive_title(outcome, index), _adaptive_caption(phase, index), phase, "weight"
        )
        for index, phase in enumerate(outcome.phases)
    ]


def adaptive_summary(outcome: AdaptiveOutcome) -> str:
    """One line: whether both settings matched, and how long the step took."""
    return _summary(outcome, "adaptive step")


def adaptive_json(outcome: AdaptiveOutcome | None) -> dict[str, Any] | None:
    """The adaptive step's results for tests and CI (None: the step did not run)."""
    if outcome is None:
        return None
    settings = outcome.policy.adaptive_weights
    return {
        "policy": str(outcome.policy.lb),
        "adaptive_weights": None if settings is None else settings.to_mapping(),
        "ok": outcome.ok,
        "bound": SHARE_BOUND,
        "seconds": outcome.seconds,
        "phases": [
            {
                "capacities": dict(p.capacities),
                "requests": p.requests,
                "errors": p.errors,
                "seconds": p.seconds,
                "pushes": p.pushes,
                "model_seconds": p.model_seconds,
                "ok": p.ok,
                "backends": [
                    {
                        "name": r.name,
                        "endpoint": r.endpoint,
                        "weight": r.weight,
                        "measured": r.measured,
                        "predicted": r.predicted,
                    }
                    for r in p.rows
                ],
            }
            for p in outcome.phases
        ],
    }
