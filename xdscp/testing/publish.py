"""A publish recorder and a bounded wait, for tests of sources and of the plane."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from xdscp.model import ServiceSet


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
