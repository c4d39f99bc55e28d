"""The seam between discovery sources and the rest of the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from xdscp.model import ServiceSet

Publish = Callable[[ServiceSet], None]
"""Called by a source with the complete set of services it owns, each time that set changes.

A source publishes whole sets, never deltas: the pipeline diffs them. A source that loses its
backend (etcd down, DNS failing) keeps publishing nothing new: the last published set stays in
force. A burst of changes is coalesced into one call.
"""


class Source(Protocol):
    """A discovery source, run as one long-lived task."""

    @property
    def name(self) -> str:
        """A short name for logs and metrics (`etcd`, `dns`, `static`)."""
        ...

    @property
    def ready(self) -> bool:
        """True once the first complete set has been published."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the source cannot follow its backend right now (None while it can).

        `/readyz` shows it for a source that is not ready yet, so an operator sees the cause
        (etcd refusing the credentials, a file that does not parse) without reading the log.
        """
        ...

    async def run(self, publish: Publish) -> None:
        """Watch the backend and call `publish` on every change, until cancelled.

        May be called again after it raised (the control plane restarts a failed source with
        backoff): each call starts from the backend's current content, and its first publish
        is the complete set without a change hint.
        """
        ...


class SourceStatus:
    """`ready` and `last_error` as a source sets them while it runs (`_ready` once it has
    published a complete set, `_error` while its backend or file cannot be read)."""

    def __init__(self) -> None:
        self._ready = False
        self._error: str | None = None

    @property
    def ready(self) -> bool:
        """True once the first complete set has been published."""
        return self._ready

    @property
    def last_error(self) -> str | None:
        """Why the source's backend or file cannot be read right now (None while it can)."""
        return self._error
