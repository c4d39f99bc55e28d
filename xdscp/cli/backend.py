"""`xdscp backend`: run a demo backend that answers HTTP and gRPC with its name."""

from __future__ import annotations

import asyncio
import signal

import click

from xdscp.demo import Backend, BackendConfig


async def _serve(config: BackendConfig) -> None:
    backend = Backend(config)
    await backend.start()
    click.echo(
        f"backend {config.name}: http {config.host}:{backend.http_port}"
        f" grpc {config.host}:{backend.grpc_port}",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await backend.stop()


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
    """Run a demo backend (HTTP and gRPC; 0 picks a free port, -1 turns a protocol off)."""
    config = BackendConfig(name, host, http_port, grpc_port, delay_ms / 1000)
    asyncio.run(_serve(config))
