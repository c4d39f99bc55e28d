"""What the demo prints: start-up steps, one measured-vs-predicted table per policy, the
commands to try while it stays up, and (for tests and CI) the same results as JSON."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rich import box
from rich.console import Console, Group
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from xdscp.demo.adaptive import AdaptiveOutcome
from xdscp.demo.failure import (
    BASE_EJECTION_S,
    FAILING,
    GUARDED,
    GUARDED_FLAGS,
    THRESHOLD,
    FailureOutcome,
)
from xdscp.demo.load import LoadOutcome
from xdscp.demo.load_report import adaptive_json, load_json
from xdscp.demo.tour import Outcome, describe
from xdscp.errors import ConfigError
from xdscp.model import parse_host_port

BAR_WIDTH = 20


class Steps:
    """Start-up progress: a live spinner per step on a terminal, one line per step otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live = console.is_terminal
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Steps:
        if self._live:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live:
            self._progress.stop()

    def begin(self, key: str, text: str) -> None:
        """A step has started."""
        self._tasks[key] = self._progress.add_task(text, total=1)

    def done(self, key: str, text: str) -> None:
        """A step has finished; `text` says what it produced (ports, pids)."""
        self._progress.update(self._tasks[key], description=text, completed=1)
        if not self._live:
            self.console.print(f"[green]✓[/] {text}")


def _bar(share: float, style: str, char: str) -> Text:
    cells = round(share * BAR_WIDTH)
    return Text(char * cells, style=style) + Text(" " * (BAR_WIDTH - cells))


def _verdict(outcome: Outcome) -> str:
    mark = "[green]✓[/]" if outcome.ok else "[red]✗ prediction missed[/]"
    detail = outcome.rule
    if outcome.on_predicted is not None:
        detail = f"{outcome.on_predicted}/{outcome.requests} requests on their predicted backend"
    if outcome.errors:
        detail += f"; {outcome.errors} requests got no backend"
    return f"{mark} {detail}"


def table(outcome: Outcome, index: int, total: int) -> Table:
    """Measured vs predicted share per backend, with a bar of each (measured above)."""
    result = Table(
        title=f"[{index}/{total}] {describe(outcome.policy)}: {outcome.requests} requests",
        caption=f"{_verdict(outcome)}; Envoy ACKed in {outcome.sync_seconds:.2f} s",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    result.add_column("backend")
    result.add_column("weight", justify="right")
    result.add_column("requests", justify="right")
    result.add_column("measured", justify="right")
    result.add_column("predicted", justify="right")
    result.add_column(
        "[green]█[/] measured\n[dim]░[/] predicted", min_width=BAR_WIDTH, no_wrap=True
    )
    for row in sorted(outcome.rows, key=lambda r: r.name):
        share = row.measured / outcome.requests if outcome.requests else 0.0
        result.add_row(
            f"{row.name} :{parse_host_port(row.endpoint)[1]}",
            str(row.weight),
            str(row.measured),
            f"{100 * share:.1f} %",
            f"{100 * row.predicted:.1f} %",
            Group(_bar(share, "green", "█"), _bar(row.predicted, "dim", "░")),
        )
    return result


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    """One line: how many strategies matched their prediction."""
    matched = sum(1 for o in outcomes if o.ok)
    mark = "[green]✓[/]" if matched == len(outcomes) else "[red]✗[/]"
    return (
        f"{mark} {matched}/{len(outcomes)} strategies matched the reference balancer"
        f" ({seconds:.1f} s)"
    )


def _pair(got: float, want: float) -> str:
    return f"{got:g}[dim]/{round(want, 1):g}[/]"


def failure_table(outcome: FailureOutcome) -> Table:
    """The failure scene: per step, client errors, what the failing backend received while
    failing, and each backend's successful answers, as measured/predicted."""
    assert GUARDED.retries is not None  # noqa: S101 - the scene's own constant
    result = Table(
        title=f"failure scene: {FAILING} answers 503 (round_robin), then the policy"
        f" consecutive_5xx {THRESHOLD} + {GUARDED.retries.num_retries} retries"
        " [dim](measured/predicted)[/]",
        caption=_failure_verdict(outcome),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    names = sorted({n for step in outcome.steps for n in step.predicted})
    result.add_column("step")
    for column in ("requests", "errors", f"{FAILING} failed", *names):
        result.add_column(column, justify="right")
    labels = ("no policy", "until ejected", "ejected", "recovered")
    for label, step in zip(labels, outcome.steps, strict=True):
        mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
        answers = [
            _pair(step.answered.get(n, 0), step.predicted[n]) if step.predicted
            else str(step.answered.get(n, 0))
            for n in names
        ]  # fmt: skip
        result.add_row(
            f"{mark} {label}", str(step.requests), _pair(step.errors, step.predicted_errors),
            _pair(step.failing_received, step.predicted_failing), *answers,
        )  # fmt: skip
    return result


def _failure_verdict(outcome: FailureOutcome) -> str:
    without, until, ejected, _ = outcome.steps
    guarded = sum(s.requests for s in outcome.steps[1:])
    guarded_errors = sum(s.errors for s in outcome.steps[1:])
    mark = "[green]✓[/]" if outcome.ok else "[red]✗ prediction missed[/]"
    return (
        f"{mark} no policy: {without.errors}/{without.requests} requests failed (predicted"
        f" {without.predicted_errors:.0f}); outlier detection + retries: {guarded_errors}/"
        f"{guarded} failed. Envoy ejected {FAILING} after {until.failing_received} failures"
        f" (threshold {THRESHOLD}; ejections_enforced_total +{outcome.ejections_enforced},"
        f" ejections_active {outcome.ejections_active}); {ejected.failing_received} requests"
        f" reached it while ejected; back in rotation {outcome.back_after_s:.1f} s after it"
        f" recovered (base_ejection_time {BASE_EJECTION_S:g} s)"
    )


def xdscp_command() -> str:
    """How the user runs xdscp: `xdscp` when that is this installation, else its path."""
    beside = Path(sys.executable).parent / "xdscp"
    on_path = shutil.which("xdscp")
    if beside.is_file() and on_path is not None and Path(on_path).resolve() == beside.resolve():
        return "xdscp"
    if beside.is_file():
        return str(beside)
    return f"{sys.executable} -m xdscp"


@dataclass(frozen=True)
class Endpoints:
    """Where the running demo can be reached."""

    service: str
    etcd_url: str
    listener_port: int
    admin_port: int
    envoy_admin_port: int
    spare_port: int
    failing_port: int  # the failure scene's backend (b2)


def instructions(where: Endpoints) -> list[tuple[str, list[str]]]:
    """The commands to try against the running demo, with its real ports, by topic."""
    x, svc = xdscp_command(), where.service
    etcd = f"--etcd {where.etcd_url}"
    url = f"http://127.0.0.1:{where.listener_port}/"
    admin = f"127.0.0.1:{where.admin_port}"
    return [
        (
            "Send traffic through Envoy",
            [
                f"curl -H 'Host: {svc}' {url}",
                f"for i in $(seq 20); do curl -s -H 'Host: {svc}' {url}; echo; done",
            ],
        ),
        (
            "Start one more backend and register it (weight 5)",
            [
                f"{x} backend --name b4 --http-port {where.spare_port} --grpc-port -1 &",
                f"{x} register {svc} 127.0.0.1:{where.spare_port} --weight 5 {etcd}",
            ],
        ),
        (
            "Change the balancing policy",
            [
                f"{x} policy set {svc} --lb maglev --hash-on header:x-user {etcd}",
                f"curl -H 'Host: {svc}' -H 'x-user: alice' {url}",
                f"{x} list {svc} {etcd}",
            ],
        ),
        (
            f"Make {FAILING} fail, and let Envoy route around it",
            [
                f"curl -X POST 'http://127.0.0.1:{where.failing_port}/_demo/fail?status=503'",
                f"{x} policy set {svc} {GUARDED_FLAGS} {etcd}",
                f"curl -s 'http://127.0.0.1:{where.envoy_admin_port}/stats?filter=outlier'",
                f"curl -X POST http://127.0.0.1:{where.failing_port}/_demo/recover",
            ],
        ),
        (
            "Look inside",
            [
                f"{x} status --admin {admin}",
                f"curl http://{admin}/debug/nodes",
                f"curl http://127.0.0.1:{where.envoy_admin_port}/clusters",
            ],
        ),
    ]


def print_instructions(console: Console, where: Endpoints) -> None:
    """Print `instructions` unwrapped, so every command can be copied as it is."""
    console.rule(f"xdscp demo is running: service {where.service!r}, etcd {where.etcd_url}")
    for topic, commands in instructions(where):
        console.print(f"[bold]{topic}[/]")
        for line in commands:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    console.rule("Ctrl-C stops every process")


def _failure_json(outcome: FailureOutcome | None) -> dict[str, object] | None:
    if outcome is None:
        return None
    return {
        "backend": outcome.backend,
        "endpoint": outcome.endpoint,
        "threshold": THRESHOLD,
        "ejections_enforced": outcome.ejections_enforced,
        "ejections_active": outcome.ejections_active,
        "back_after_s": outcome.back_after_s,
        "ok": outcome.ok,
        "steps": [
            {
                "label": s.label,
                "requests": s.requests,
                "errors": s.errors,
                "predicted_errors": s.predicted_errors,
                "failing_received": s.failing_received,
                "answered": dict(s.answered),
                "predicted": dict(s.predicted),
                "ok": s.ok,
            }
            for s in outcome.steps
        ],
    }


def write_json(
    path: Path,
    outcomes: Sequence[Outcome],
    children: list[dict[str, object]],
    *,
    failure: FailureOutcome | None = None,
    load: LoadOutcome | None = None,
    adaptive: AdaptiveOutcome | None = None,
) -> None:
    """The tour's results, the failure scene's, the load-aware and adaptive steps' and the
    children's pids and ports, for tests and CI."""
    document = {
        "adaptive": adaptive_json(adaptive),
        "children": children,
        "failure": _failure_json(failure),
        "load": load_json(load),
        "strategies": [
            {
                "policy": str(o.policy.lb),
                "hash_on": [str(h) for h in o.policy.hash_on],
                "requests": o.requests,
                "errors": o.errors,
                "on_predicted": o.on_predicted,
                "bound": o.bound,
                "ok": o.ok,
                "backends": [
                    {
                        "name": r.name,
                        "endpoint": r.endpoint,
                        "weight": r.weight,
                        "measured": r.measured,
                        "predicted": r.predicted,
                    }
                    for r in o.rows
                ],
            }
            for o in outcomes
        ],
    }
    try:
        path.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"--report {path}: {exc}") from None
