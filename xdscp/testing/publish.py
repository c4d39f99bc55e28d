"""A publish recorder, bounded waits and a source runner, for tests of sources and the plane."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from xdscp.model import ServiceSet
from xdscp.sources import Publish, Source


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


async def wait_for(
    predicate: Callable[[], object], limit: float = 10.0, *, interval: float = 0.02
) -> None:
    """Re-check `predicate` every `interval` seconds until it holds; `AssertionError` if it
    does not within `limit` seconds."""
    try:
        async with asyncio.timeout(limit):
            while not predicate():  # noqa: ASYNC110 - any predicate, not only an Event
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError("condition not reached in time") from None


T = TypeVar("T")


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
