"""A publish recorder, bounded waits and a source runner, for tests of sources and the plane."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar, overload

from xdscp.model import ServiceSet
from xdscp.sources import Publish, Source

T = TypeVar("T")


class Recorder:
    """Records every published service set; a `Publish` callable to give a source."""

    def __init__(self) -> None:
        self.sets: list[ServiceSet] = []
        self.changed = asyncio.Event()  # set at every publish; clear it to wait for the next

    def __call__(self, services: ServiceSet) -> None:
        self.sets.append(services)
        self.changed.set()

    @property
    def last(self) -> dict[str, list[str]]:
        """The last published set as service -> endpoint keys (`{}` before any)."""
        if not self.sets:
            return {}
        return {n: [e.key for e in s.endpoints] for n, s in self.sets[-1].items()}


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    limit: float = 10.0,
    *,
    interval: float = 0.02,
    retry_on: tuple[type[Exception], ...] = (),
    what: str = "condition",
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    limit: float = 10.0,
    *,
    interval: float = 0.02,
    retry_on: tuple[type[Exception], ...] = (),
    what: str = "condition",
) -> T: ...


async def wait_for(
    predicate: Callable[[], object],
    limit: float = 10.0,
    *,
    interval: float = 0.02,
    retry_on: tuple[type[Exception], ...] = (),
    what: str = "condition",
) -> object:
    """Re-check `predicate` every `interval` seconds until it returns a true value, and return
    it; `predicate` may be a coroutine function (e.g. a read of an admin route). An exception
    of `retry_on` (e.g. `OSError`: the server is not listening yet) counts as not yet.
    `AssertionError` naming `what` and the last value if it does not hold within `limit`
    seconds."""
    last: object = None
    try:
        async with asyncio.timeout(limit):
            while True:
                try:
                    value = predicate()
                    last = await value if inspect.isawaitable(value) else value
                except retry_on as error:
                    last = error
                else:
                    if last:
                        return last
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"{what} not reached in time (last: {last!r:.500})") from None


def wait_until(
    predicate: Callable[[], T],
    limit: float = 10.0,
    *,
    interval: float = 0.05,
    retry_on: tuple[type[Exception], ...] = (OSError,),
) -> T:
    """The blocking form of `wait_for`, for tests that drive another process: re-check
    `predicate` until it returns a true value, and return it. An exception of `retry_on`
    (by default `OSError`: the process is not listening yet) counts as not yet.
    `AssertionError` if it does not hold within `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        try:
            value = predicate()
        except retry_on:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


@contextlib.asynccontextmanager
async def running(source: Source, publish: Publish) -> AsyncIterator[None]:
    """Run `source` in a task for the duration of the block, cancelled afterwards; if it
    failed meanwhile, its exception is raised here (the test fails with it)."""
    task = asyncio.create_task(source.run(publish))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
