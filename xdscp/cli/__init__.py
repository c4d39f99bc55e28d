"""The `xdscp` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import click
from click.core import ParameterSource

from xdscp import __version__
from xdscp.cli import backend, bootstrap, demo, nodes, registry, routes, serve, simulate, status
from xdscp.logs import LONG_RUNNING, configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xdscp")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "console", "json"]),
    help="auto: human output on a terminal, JSON lines otherwise (long-running commands);"
    " one plain line per warning for the others.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str) -> None:
    """xdscp: service discovery and load balancing for Envoy and proxyless gRPC, over xDS."""
    short_lived = ctx.invoked_subcommand not in LONG_RUNNING
    # A short-lived command says what it did itself: its info events are dropped.
    quiet = short_lived and ctx.get_parameter_source("log_level") is ParameterSource.DEFAULT
    configure_logging(log_level, log_format, short_lived=short_lived, quiet=quiet)  # type: ignore[arg-type]


for _module in (backend, bootstrap, demo, serve, simulate, status):
    main.add_command(_module.command)
for _command in (*registry.commands, *routes.commands, *nodes.commands):
    main.add_command(_command)
