"""The stopper a long-running command's loop hands SIGINT/SIGTERM to (real signals are sent
to real processes in tests/integration/etcd/test_registrar_cli.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from xdscp.signals import Interrupted, Stopper


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_signal_cancels_the_command_until_it_is_graceful() -> None:
    """Before `graceful()`, the first signal cancels the command's task at once."""
    task = asyncio.create_task(_forever())
    stopper = Stopper(task)
    await asyncio.sleep(0)  # the task waits
    stopper.on_signal(signal.SIGTERM)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopper.signal is signal.SIGTERM
    assert stopper.stopping


async def test_graceful_first_signal_sets_the_stopper_and_the_second_cancels() -> None:
    task = asyncio.create_task(_forever())
    stopper = Stopper(task)
    stopper.graceful()
    await asyncio.sleep(0)
    stopper.on_signal(signal.SIGINT)
    await asyncio.wait_for(stopper.wait(), 5)
    assert not task.done()
    stopper.on_signal(signal.SIGTERM)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (stopper.signal, stopper.count) == (signal.SIGINT, 2)  # the first one is named


def test_interrupted_names_its_signal_and_is_no_exception() -> None:
    """A BaseException (like KeyboardInterrupt): no `except Exception` swallows it."""
    stop = Interrupted(signal.SIGTERM)
    assert str(stop) == "stopped by SIGTERM"
    assert not isinstance(stop, Exception)


_SECOND_SIGNAL_WHILE_LEAVING = """
import signal, sys
import xdscp.cli
from xdscp import __main__
from xdscp.signals import Interrupted

def cli():
    raise Interrupted(signal.SIGTERM)

class Stderr:  # a SIGINT arrives while the one line about the SIGTERM is written
    sent = False
    def write(self, text):
        if not Stderr.sent:
            Stderr.sent = True
            signal.raise_signal(signal.SIGINT)
        return sys.__stderr__.write(text)
    def flush(self):
        sys.__stderr__.flush()

xdscp.cli.main = cli
sys.stderr = Stderr()
__main__.main()
"""


def test_a_second_signal_while_leaving_ends_the_process_without_a_traceback() -> None:
    """`xdscp` stopped by one signal and given another while it says so: the process ends
    by a signal, never with an `Interrupted` traceback and status 1."""
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_SIGNAL_WHILE_LEAVING],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (-signal.SIGINT, -signal.SIGTERM), (done.returncode, done.stderr)
