"""`xdscp backend`: run a demo backend that answers HTTP and gRPC with its name.

SIGINT/SIGTERM stop it at any step (while binding too) with one line and exit status 0; a
port that cannot be bound is one line and exit status 1.
"""

from __future__ import annotations

import click

from xdscp.demo import Backend, BackendConfig
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
        click.echo(
            f"backend {config.name}: http {config.host}:{backend.http_port}"
            f" grpc {config.host}:{backend.grpc_port}",
        )
        await stopper.wait()
    finally:
        await backend.stop()
    click.echo(f"backend {config.name} stopped by {getattr(stopper.signal, 'name', 'a signal')}")


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
def command(name: str, host: str, http_port: int, grpc_port: int, delay_ms: float) -> None:
    """Run a demo backend (HTTP and gRPC; 0 picks a free port, -1 turns a protocol off)
    until SIGINT/SIGTERM (exit status 0)."""
    config = BackendConfig(name, host, http_port, grpc_port, delay_ms / 1000)
    try:
        run_until_stopped(lambda stopper: _serve(config, stopper))
    except Interrupted as stop:
        click.echo(f"backend {name} stopped by {stop.signal.name}")
