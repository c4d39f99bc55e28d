"""An `xdscp` command in its own process, its output lines collected as they come, so a test
waits on a line (readiness) instead of a sleep."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Self

import click

from xdscp.cli.registry import commands
from xdscp.testing import wait_until

EXIT_LIMIT = 60.0  # seconds a stopped command may take to end: generous, the machine is shared


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for an `xdscp` (or etcd) child process: this one's, without any
    XDSCP_* or ETCD* setting of the caller's (so the test's flags are all it gets), plus
    `overrides`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("XDSCP_", "ETCD"))}
    return inherited | overrides


def cli() -> click.Group:
    """The registry's commands (`register`, `deregister`, `list`, `policy`...) in a group of
    their own, for click's `CliRunner` (in this process)."""
    group = click.Group("xdscp")
    for command in commands:
        group.add_command(command)
    return group


class Cli:
    """`python -m xdscp --log-format json ARGS` (or `prefix ARGS`), lines of both streams."""

    def __init__(self, *args: str, prefix: Sequence[str] = ()) -> None:
        env = child_env()
        command = [*prefix, sys.executable, "-m", "xdscp", "--log-format", "json", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True,  # a group: see __exit__
        )  # fmt: skip
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=_collect, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=_collect, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        # the whole group: with a prefix (`timeout 8`) killing the process alone would leave
        # xdscp running, holding the output pipes the readers wait on
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for reader in self._readers:
            reader.join()

    def wait_line(self, stream: list[str], match: Callable[[str], bool], limit: float = 60) -> str:
        """The first line of `stream` that matches (waiting for it); fails if the process
        ends first or nothing matches within `limit` seconds."""

        def found() -> str | None:
            line = next((line for line in list(stream) if match(line)), None)
            if line is None and self.process.poll() is not None:
                raise AssertionError(f"ended ({self.process.returncode}) first: {self.output}")
            return line

        line = wait_until(found, limit)
        assert line is not None  # wait_until returns a true value
        return line

    def ended(self, limit: float = EXIT_LIMIT) -> int:
        """The exit status, once the process ended (within `limit` seconds) and its output
        was read to the end."""
        status = self.process.wait(timeout=limit)
        for reader in self._readers:
            reader.join()
        return status

    @property
    def output(self) -> str:
        return "\n".join(["stdout:", *self.stdout, "stderr:", *self.stderr])

    def assert_no_traceback(self) -> None:
        text = self.output
        assert "Traceback" not in text, text
        assert "CancelledError" not in text, text


def _collect(stream: IO[bytes], lines: list[str]) -> None:
    for raw in stream:
        lines.append(raw.decode(errors="replace").rstrip("\n"))  # noqa: PERF401  # seen as read
