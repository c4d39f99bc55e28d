"""`xdscp simulate`: predict how Envoy or gRPC spreads requests over endpoints."""

from __future__ import annotations

import click


@click.command("simulate")
def command() -> None:
    """Predict the share of requests each endpoint receives under a policy."""
    raise click.ClickException("the reference balancer is not built yet")
