"""`xdscp backend`: run a demo backend that answers HTTP and gRPC with its name.

SIGINT/SIGTERM stop it at any step (while binding too) with one line and exit status 0; a
port that cannot be bound is one line and exit status 1.

`--capacity RPS` (or `--report-cpu`) makes it report its load (ORCA) with every response and
on `OpenRcaService`; `POST /_demo/capacity?rps=N` on its HTTP port changes the capacity while
it runs (the same control path the demo already uses to fail and recover a backend: it answers
at once with the new load, or a 400 naming a bad value, from any HTTP client or another host,
where a signal re-reading a file could only log a mistake).
"""

from __future__ import annotations

import click

from xdscp.demo import Backend, BackendConfig
from xdscp.errors import ValidationError
from xdscp.orca import HeaderFormat, check_capacity
from xdscp.signals import Interrupted, Stopper, run_until_stopped


async def _serve(config: BackendConfig, stopper: Stopper) -> None:
    backend = Backend(config)
    try:
        try:
            await backend.start()
        except (OSError, RuntimeError) as exc:  # a port in use (grpc says RuntimeError)
            raise click.ClickException(
                f"backend {config.name}: cannot listen on {config.host}"
                f" (http {config.http_port}, grpc {config.grpc_port}): {exc}"
            ) from None
        stopper.graceful()  # the next signal ends the wait below; stopping is quick
        load = "" if backend.meter is None else f" (reporting load: {_load_of(config)})"
        click.echo(
            f"backend {config.name}: http {config.host}:{backend.http_port}"
            f" grpc {config.host}:{backend.grpc_port}{load}",
        )
        await stopper.wait()
    finally:
        await backend.stop()
    click.echo(f"backend {config.name} stopped by {getattr(stopper.signal, 'name', 'a signal')}")


def _load_of(config: BackendConfig) -> str:
    return "cpu" if config.report_cpu else f"capacity {config.capacity:g} rps"


def _capacity(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    try:
        return None if value is None else check_capacity(value)
    except ValidationError as exc:
        raise click.BadParameter(exc.message) from None


@click.command("backend")
@click.option("--name", required=True, help="What the backend answers with.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--http-port", default=0, show_default=True, type=click.IntRange(-1, 65535))
@click.option("--grpc-port", default=0, show_default=True, type=click.IntRange(-1, 65535))
@click.option(
    "--delay-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 60_000),
    help="Hold every request this long (makes least-request balancing visible).",
)
@click.option(
    "--capacity",
    type=float,
    default=None,
    callback=_capacity,
    help="Report load (ORCA): utilization = measured requests/s / this capacity."
    " Change it while running: POST /_demo/capacity?rps=N.",
)
@click.option(
    "--report-cpu",
    is_flag=True,
    help="Report load (ORCA) as the process's measured CPU instead of a capacity.",
)
@click.option(
    "--orca-format",
    type=click.Choice([form.value for form in HeaderFormat], case_sensitive=False),
    default=HeaderFormat.TEXT.value,
    show_default=True,
    help="How the endpoint-load-metrics HTTP header spells the report.",
)
def command(  # noqa: PLR0917 - one parameter per command-line option
    name: str,
    host: str,
    http_port: int,
    grpc_port: int,
    delay_ms: float,
    capacity: float | None,
    report_cpu: bool,
    orca_format: str,
) -> None:
    """Run a demo backend (HTTP and gRPC; 0 picks a free port, -1 turns a protocol off)
    until SIGINT/SIGTERM (exit status 0)."""
    if capacity is not None and report_cpu:
        raise click.UsageError("--capacity and --report-cpu exclude each other: report one load")
    config = BackendConfig(
        name,
        host,
        http_port,
        grpc_port,
        delay_ms / 1000,
        capacity=capacity,
        report_cpu=report_cpu,
        orca_format=HeaderFormat(orca_format.upper()),
    )
    try:
        run_until_stopped(lambda stopper: _serve(config, stopper))
    except Interrupted as stop:
        click.echo(f"backend {name} stopped by {stop.signal.name}")
