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


def write_json(path: Path, outcomes: Sequence[Outcome], children: list[dict[str, object]]) -> None:
    """The tour's results and the children's pids and ports, for tests and CI."""
    document = {
        "children": children,
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
