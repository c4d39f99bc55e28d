"""A source fed from Python: applications embedding xdscp (and tests) set services directly."""

from __future__ import annotations

import asyncio

from xdscp.model import ServiceSet
from xdscp.sources.base import Publish


class MemorySource:
    """Publishes whatever `set()` is given; ready once it has been given a set."""

    def __init__(self, services: ServiceSet | None = None, name: str = "memory") -> None:
        self._name = name
        self._services = dict(services) if services is not None else None
        self._publish: Publish | None = None

    @property
    def name(self) -> str:
        """Source name for logs."""
        return self._name

    @property
    def ready(self) -> bool:
        """True once a set of services was given."""
        return self._services is not None

    @property
    def last_error(self) -> str | None:
        """Always None: nothing can fail."""
        return None

    def set(self, services: ServiceSet) -> None:
        """Replace the whole set of services this source owns."""
        self._services = dict(services)
        if self._publish is not None:
            self._publish(self._services)

    async def run(self, publish: Publish) -> None:
        """Publish the current set, then every later `set()`, until cancelled."""
        self._publish = publish
        if self._services is not None:
            publish(self._services)
        await asyncio.Event().wait()
