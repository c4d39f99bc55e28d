"""`xdscp register`'s run: register, hold until a signal or until the key is not ours, leave.

Every ending is one line and a documented exit status:

- 0: stopped by SIGINT/SIGTERM — after draining and revoking, or before anything was
  registered (etcd unreachable: nothing left behind); or the key was deleted by someone
  else (`xdscp deregister`): the registrar stops and does not write it back.
- 1: the lease could not be revoked on the way out (the key stays until its TTL runs out),
  or an error no retry fixes (wrong credentials).
- 3: the key is held by another lease — refused at start (another registrar of the same
  endpoint), or overwritten while registered: the registrar stops without touching it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from xdscp.errors import KeyHeldError, KeyRemovedError, ValidationError, XdscpError
from xdscp.etcd import EtcdClient, EtcdConfig
from xdscp.model import ReportedLoad
from xdscp.registry import Placement, Registered, Registration, register, report_load
from xdscp.signals import Interrupted, Stopper, run_until_stopped

log = structlog.get_logger(__name__)

EXIT_HELD = 3
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class LoadRefresh:
    """The registrant's own load, written again every `interval` seconds, freshly stamped:
    from `file` (JSON `{"utilization": U, "rps": R}`, re-read each time, so another process
    can update it) or the fixed values given."""

    interval: float
    utilization: float | None = None
    rps: float | None = None
    file: Path | None = None

    def read(self) -> ReportedLoad:
        """The load now (`ValidationError`: a bad file or value, nothing written)."""
        if self.file is None:
            return ReportedLoad(self.utilization, self.rps, time.time())  # type: ignore[arg-type]
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError) as exc:
            raise ValidationError("load", f"cannot read {self.file}: {exc}") from None
        if isinstance(data, dict):
            data = {**data, "at": time.time()}
        return ReportedLoad.from_mapping(data)


class KeyHeldExit(click.ClickException):
    """The key is someone else's: exit status 3."""

    exit_code = EXIT_HELD


@dataclass(frozen=True, slots=True)
class RegistrarOptions:
    """What `xdscp register` was asked to do."""

    config: EtcdConfig
    registration: Registration
    placement: Placement
    ttl: int
    drain: float
    deregister_command: str  # the command line that removes the key (said to the user)
    load: LoadRefresh | None = None


@dataclass(slots=True)
class Progress:
    """How far the run got (read when a signal cut it short)."""

    done: Registered | None = None


def run_registrar(options: RegistrarOptions) -> None:
    """Run `xdscp register`; raises click's exceptions (or returns: status 0)."""
    progress = Progress()
    try:
        run_until_stopped(lambda stopper: _registrar(options, progress, stopper))
    except Interrupted as stop:
        _interrupted(options, progress, stop)
    except KeyHeldError as exc:
        raise KeyHeldExit(_held_message(options, exc)) from None
    except XdscpError as exc:
        raise click.ClickException(str(exc)) from None


def load_options(func: F) -> F:
    """`xdscp register`'s flags for the endpoint's own load."""
    options = [
        click.option("--utilization", type=float, default=None,
                     help="This endpoint's load (rate / capacity, or CPU), for adaptive weights."),
        click.option("--rps", type=float, default=None, help="The requests per second it serves."),
        click.option("--load-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help='JSON {"utilization": U, "rps": R}, re-read at every refresh.'),
        click.option("--load-interval", type=click.FloatRange(0.1, 3600.0), default=5.0,
                     show_default=True, metavar="SECONDS", help="Write the load again this often."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def load_refresh(params: dict[str, Any]) -> LoadRefresh | None:
    """`xdscp register`'s load to refresh, from its flags, checked now: a bad value or
    file is a usage error naming the flag."""
    utilization, rps, file = params["utilization"], params["rps"], params["load_file"]
    if file is not None and (utilization is not None or rps is not None):
        raise click.BadParameter("give --load-file or --utilization/--rps, not both")
    if file is None and utilization is None:
        if rps is not None:
            raise click.BadParameter("--rps needs --utilization", param_hint="--rps")
        return None
    refresh = LoadRefresh(params["load_interval"], utilization, rps, file)
    try:
        refresh.read()
    except ValidationError as exc:
        hint = "--load-file" if file is not None else f"--{exc.field.removeprefix('load.')}"
        raise click.BadParameter(exc.message, param_hint=hint) from None
    return refresh


async def _registrar(options: RegistrarOptions, progress: Progress, stopper: Stopper) -> None:
    async with (
        EtcdClient(options.config) as client,
        register(
            client, options.registration, options.placement, ttl=options.ttl, drain=options.drain
        ) as done,
    ):
        progress.done = done
        stopper.graceful()  # from now on a signal drains and revokes; a second, at once
        click.echo(f"registered {done.key} = {done.value.decode()} (lease {done.lease_id:x})")
        refresh = None
        if options.load is not None:
            refresh = asyncio.create_task(_refresh_load(client, done, options, options.load))
        try:
            await _stopped_or_ended(stopper, done)
        finally:
            if refresh is not None:
                refresh.cancel()
                await asyncio.gather(refresh, return_exceptions=True)
        if done.end is None and options.drain:
            click.echo(f"draining {done.key} for {options.drain:g} s")
    _left(options, done)


async def _refresh_load(
    client: EtcdClient, done: Registered, options: RegistrarOptions, load: LoadRefresh
) -> None:
    """Write the load again every interval; a bad reading is logged and skipped (the
    registration stays as it is)."""
    while True:
        await asyncio.sleep(load.interval)
        try:
            written = await report_load(client, done, options.placement, load.read())
        except ValidationError as exc:
            log.warning("registration_load_refused", key=done.key, error=str(exc))
            continue
        except XdscpError as exc:  # etcd away: the keeper restores the key; try again later
            log.warning("registration_load_failed", key=done.key, error=str(exc))
            continue
        if not written:
            log.info("registration_load_skipped", key=done.key, reason="the key is not ours")


async def _stopped_or_ended(stopper: Stopper, done: Registered) -> None:
    """Return at the first signal, or when the registration ended on its own."""
    waits = [asyncio.create_task(stopper.wait()), asyncio.create_task(done.wait_ended())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)  # nothing left pending


def _left(options: RegistrarOptions, done: Registered) -> None:
    """The last line, after the block: why it ended and what stays in etcd."""
    if isinstance(done.end, KeyRemovedError):
        click.echo(
            f"{done.key} was deleted by someone else (xdscp deregister?) while registered:"
            " stopping without registering it again"
        )
        return
    if isinstance(done.end, KeyHeldError):
        raise KeyHeldExit(
            f"{done.key} was {done.end.message.removeprefix('overwritten ')}: stopping"
            " without touching it"
        )
    if not done.revoked:
        raise click.ClickException(
            f"could not deregister {done.key} ({done.revoke_error}): it stays until its"
            f" lease expires, within {options.ttl} s"
        )
    click.echo(f"deregistered {done.key}")


def _interrupted(options: RegistrarOptions, progress: Progress, stop: Interrupted) -> None:
    """A signal cancelled the run: before registering, or (a second one) on the way out."""
    done = progress.done
    name = stop.signal.name
    if done is None:
        endpoints = ", ".join(options.config.endpoints)
        click.echo(f"stopped by {name} before registering (etcd: {endpoints}): nothing registered")
        return
    if done.revoked:
        click.echo(f"deregistered {done.key} (drain cut short by {name})")
        return
    raise click.ClickException(
        f"stopped by {name} before revoking the lease of {done.key}: it stays until its"
        f" lease expires, within {options.ttl} s"
    )


def _held_message(options: RegistrarOptions, error: KeyHeldError) -> str:
    """One line: the key, its holder, and what to do."""
    if not error.holder:
        return (
            f"{error.key} already exists without a lease (written by hand?): not overwriting it;"
            f" remove it with `{options.deregister_command}`, then register again"
        )
    left = f", {error.ttl_left} s left" if error.ttl_left >= 0 else ""
    return (
        f"{error.key} is already registered by another registrar (lease {error.holder:x}{left});"
        f" stop that one, or remove its key with `{options.deregister_command}`, then register"
        " again (a registrar killed without deregistering holds it until its lease expires)"
    )
