"""SIGINT and SIGTERM, handled from the first instruction of the `xdscp` executable to its end.

Three stages, one rule — a signal is never ignored and never shows a traceback:

- `handle_from_start()` (the executable's first call, before the heavy imports): a signal
  raises `Interrupted`, which unwinds whatever runs (imports, flag parsing, a short command)
  to `xdscp.__main__`, which prints one line and ends the process by that same signal.
- `run_until_stopped(main)`: an event loop whose signal handlers are installed before
  `main` runs. A signal cancels `main` at once, wherever it waits (connecting to etcd,
  retrying, a lease grant), and `run_until_stopped` raises `Interrupted`.
- `Stopper.graceful()`: from then on the first signal only sets the stopper (the command
  winds down its own way: a drain, a revoke) and each later one cancels the current step.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # like KeyboardInterrupt: not an error
    """SIGINT or SIGTERM stopped the command. A BaseException, like KeyboardInterrupt, so
    that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        super().__init__(f"stopped by {self.signal.name}")


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def handled() -> list[signal.Signals]:
    """SIGINT and SIGTERM, except one ignored since the process started (a shell runs a
    script's background jobs with SIGINT ignored: Ctrl-C is not for them)."""
    return [sig for sig in SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]


def handle_from_start() -> None:
    """Make SIGINT and SIGTERM raise `Interrupted` in the main thread (until an event loop
    installs its own handlers)."""
    for sig in handled():
        signal.signal(sig, _raise_interrupted)


class Stopper:
    """What SIGINT/SIGTERM do to a running command: cancel its task (the default), or, once
    `graceful()` was called, set `stopping` first and cancel only at the next signal."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._event = asyncio.Event()
        self._graceful = False
        self.signal: signal.Signals | None = None  # the first signal received
        self.count = 0

    @property
    def stopping(self) -> bool:
        """True once a signal was received."""
        return self._event.is_set()

    def graceful(self) -> None:
        """From now on the first signal only sets `stopping`; the command stops by itself."""
        self._graceful = True

    async def wait(self) -> None:
        """Return once a signal was received."""
        await self._event.wait()

    def on_signal(self, sig: signal.Signals) -> None:
        """The loop's handler of `sig`."""
        self.count += 1
        self.signal = self.signal or sig
        self._event.set()
        if not self._graceful or self.count > 1:
            self._task.cancel()


def run_until_stopped(main: Callable[[Stopper], Coroutine[Any, Any, T]]) -> T:
    """Run `main(stopper)` in a new event loop with SIGINT/SIGTERM handled by `stopper`
    (installed before `main` starts); a signal that cancelled `main` raises `Interrupted`.
    The handlers in place before (`handle_from_start`'s) apply again afterwards."""

    async def runner() -> T:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - asyncio.run always runs a task
            raise RuntimeError("run_until_stopped needs a task")
        stopper = Stopper(task)
        loop = asyncio.get_running_loop()
        for sig in watched:
            loop.add_signal_handler(sig, stopper.on_signal, sig)
        try:
            return await main(stopper)
        except asyncio.CancelledError:
            if stopper.signal is None:
                raise
            raise Interrupted(stopper.signal) from None

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    watched = handled()
    try:
        return asyncio.run(runner())
    finally:
        for sig, handler in previous.items():  # closing the loop reset them to the defaults
            if handler is not None:  # None: not set from Python, nothing to put back
                signal.signal(sig, handler)
