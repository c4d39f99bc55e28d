"""Whether each source follows its backend now: `ok`, `starting` or `degraded`, since when.

A source says why it cannot follow its backend in `last_error` (etcd unreachable or refusing
the credentials, a DNS name failing, a file that does not read or parse); its last published
services stay in force meanwhile. `SourceMonitor` turns those into states with the time each
began, the `xdscp_source_up{source}` gauge, one log line per change and a callback (the
dashboard's `sources` event). `/readyz` stays 200 while a source is degraded — serving the
last known good configuration is right, and a 503 from every replica during an etcd outage
would take them all out of a load balancer at once — but says `degraded`, naming the source.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from xdscp.sources import Source

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 1.0
OK, STARTING, DEGRADED = "ok", "starting", "degraded"


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source's state, since when (Unix time) and why (for `degraded`)."""

    source: str
    state: str
    since: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """`since` as an ISO 8601 UTC time, to the second."""
        at = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        return {"source": self.source, "state": self.state, "since": at, "error": self.error}


def state_of(source: Source) -> tuple[str, str | None]:
    """(state, error) of a source now: an error is `degraded`, else ready is `ok`."""
    error = source.last_error
    if error:
        return DEGRADED, error
    return (OK if source.ready else STARTING), None


class SourceMonitor:
    """Looks at every source (`check`, also every second in `run`) and remembers when each
    state began; counts a source's unexpected failures (`failed`, from the plane's
    supervisor) and says which sources readiness waits for (`waiting`)."""

    def __init__(
        self,
        sources: Sequence[Source],
        metrics_registry: CollectorRegistry,
        on_change: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = tuple(sources)
        self._on_change = on_change
        self._clock = clock
        self._up = Gauge(
            "xdscp_source_up",
            "1 while the source follows its backend (etcd answers, DNS resolves, the file"
            " reads); 0 while it cannot (its last known services are served) or before its"
            " first set.",
            ["source"],
            registry=metrics_registry,
        )
        self._states: dict[str, SourceState] = {}
        self._failures = Counter(
            "xdscp_source_failures",
            "Times a source failed unexpectedly and was restarted (its last services kept).",
            ["source"],
            registry=metrics_registry,
        )
        self._errors: dict[int, str] = {}  # position -> the last unexpected failure

    def failed(self, position: int, error: str) -> None:
        """Source number `position` (0-based) failed unexpectedly with `error` (it is
        restarted): counted, and named by readiness while it is not ready."""
        self._errors[position] = error
        self._failures.labels(self._sources[position].name).inc()

    def waiting(self) -> list[str]:
        """The sources not ready yet, each with its last error when there is one."""
        waiting = []
        for position, source in enumerate(self._sources):
            if source.ready:
                continue
            error = source.last_error or self._errors.get(position)
            waiting.append(f"{source.name} ({error})" if error else source.name)
        return waiting

    def check(self) -> list[SourceState]:
        """Every source's state now (a change is logged, counted and announced)."""
        changed = False
        for source in self._sources:
            state, error = state_of(source)
            known = self._states.get(source.name)
            if known is not None and (known.state, known.error) == (state, error):
                continue
            since = known.since if known is not None and known.state == state else self._clock()
            self._states[source.name] = SourceState(source.name, state, since, error)
            self._up.labels(source.name).set(1 if state == OK else 0)
            _log_change(known, self._states[source.name])
            changed = True
        if changed:
            self._on_change()
        return [self._states[source.name] for source in self._sources]

    async def run(self, interval_s: float = CHECK_INTERVAL_S) -> None:
        """Check every `interval_s` until cancelled."""
        while True:
            self.check()
            await asyncio.sleep(interval_s)


def _log_change(before: SourceState | None, now: SourceState) -> None:
    if now.state == DEGRADED and (before is None or before.state != DEGRADED):
        log.warning("source_degraded", source=now.source, error=now.error)
    elif now.state == OK and before is not None and before.state == DEGRADED:
        log.info("source_recovered", source=now.source, after_s=round(now.since - before.since))
