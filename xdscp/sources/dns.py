"""The DNS source: resolves the declared services and publishes them as one set.

Each declaration is followed by its own task: query, feed the outcome to its
`xdscp.dns.ServiceTracker`, sleep the delay the tracker returns (TTL clamped after an answer,
jittered exponential backoff after a failure). A publish task gathers changes that arrive
within `min_interval` into one publish, and publishes only when the set actually changed.

Start-up: the first set is published once every declaration has a definitive answer, or after
`startup_grace` seconds with whatever is known then (`dns_startup_incomplete` names the rest);
`ready` turns True at that first publish.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from types import MappingProxyType

import structlog
from prometheus_client import CollectorRegistry

from xdscp.dns import (
    DnsLookupError,
    DnsMetrics,
    DnsResolver,
    DnsService,
    Note,
    RefreshPolicy,
    ResolverConfig,
    ServiceTracker,
    Status,
    Step,
)
from xdscp.errors import ConfigError
from xdscp.model import ServiceSet
from xdscp.sources.base import Publish

log = structlog.get_logger("xdscp.sources.dns")


class DnsSource:
    """A `Source` publishing the services declared with DNS records."""

    def __init__(
        self,
        declarations: Iterable[DnsService],
        resolver_config: ResolverConfig | None = None,
        *,
        refresh: RefreshPolicy | None = None,
        resolver: DnsResolver | None = None,
        metrics: DnsMetrics | None = None,
        min_interval: float = 0.05,
        startup_grace: float = 10.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        policy = refresh or RefreshPolicy()
        shared_rng = rng or random.Random()
        self._trackers: dict[str, ServiceTracker] = {}
        for declaration in declarations:
            if declaration.service in self._trackers:
                raise ConfigError(f"DNS service {declaration.service} is declared twice")
            self._trackers[declaration.service] = ServiceTracker(declaration, policy, shared_rng)
        self.resolver = resolver or DnsResolver(resolver_config)
        self.metrics = metrics or DnsMetrics(CollectorRegistry())
        self._min_interval = min_interval
        self._startup_grace = startup_grace
        self._clock = clock
        self._changed = asyncio.Event()
        self._settled = asyncio.Event()
        self._delays: dict[str, float] = {}
        self._published: ServiceSet | None = None

    @property
    def name(self) -> str:
        """`dns`."""
        return "dns"

    @property
    def ready(self) -> bool:
        """True once the first complete set has been published."""
        return self._published is not None

    @property
    def last_error(self) -> str | None:
        """The declared services DNS does not answer for right now, with the reasons."""
        failing = [
            f"{name}: {tracker.reason or tracker.status}"
            for name, tracker in sorted(self._trackers.items())
            if tracker.status in {Status.FAILING, Status.MISSING}
        ]
        return "; ".join(failing) or None

    def status(self, service: str) -> Status:
        """Where a declared service stands (`KeyError` for an undeclared one)."""
        return self._trackers[service].status

    def next_refresh(self, service: str) -> float | None:
        """The delay the service's task sleeps before its next query (None before the first)."""
        return self._delays.get(service)

    def current(self) -> ServiceSet:
        """The set the DNS source would publish now, services in name order."""
        return MappingProxyType(
            {
                name: tracker.service
                for name, tracker in sorted(self._trackers.items())
                if tracker.service is not None
            }
        )

    async def run(self, publish: Publish) -> None:
        """Follow every declaration and publish on change, until cancelled."""
        self._check_settled()
        async with asyncio.TaskGroup() as group:
            for tracker in self._trackers.values():
                group.create_task(self._follow(tracker))
            group.create_task(self._publish_loop(publish))

    async def _follow(self, tracker: ServiceTracker) -> None:
        while True:
            step = await self._refresh(tracker)
            self._delays[tracker.declaration.service] = step.delay
            await asyncio.sleep(step.delay)

    async def _refresh(self, tracker: ServiceTracker) -> Step:
        name = tracker.declaration.service
        self.metrics.lookups.labels(name).inc()
        try:
            found = await self.resolver.lookup(tracker.declaration)
        except DnsLookupError as exc:
            self.metrics.failures.labels(name, exc.reason).inc()
            step = tracker.failed(exc.reason, transient=exc.transient, now=self._clock())
        else:
            step = tracker.succeeded(found.endpoints, found.ttl)
        _emit(step.note)
        self.metrics.up.labels(name).set(1 if tracker.status is Status.OK else 0)
        kept = tracker.service.endpoints if tracker.service else ()
        self.metrics.endpoints.labels(name).set(len(kept))
        if step.changed:
            self._changed.set()
        self._check_settled()
        return step

    def _check_settled(self) -> None:
        if not self._settled.is_set() and all(t.settled for t in self._trackers.values()):
            self._settled.set()

    async def _publish_loop(self, publish: Publish) -> None:
        try:
            async with asyncio.timeout(self._startup_grace):
                await self._settled.wait()
        except TimeoutError:
            pending = sorted(n for n, t in self._trackers.items() if not t.settled)
            log.warning("dns_startup_incomplete", pending=pending, waited=self._startup_grace)
        while True:
            self._changed.clear()
            services = self.current()
            if self._published is None or services != self._published:
                publish(services)
                self._published = services
                self.metrics.publishes.inc()
                log.info("dns_services_published", services=len(services))
            await self._changed.wait()
            await asyncio.sleep(self._min_interval)


def _emit(note: Note | None) -> None:
    if note is None:
        return
    emit = {"info": log.info, "warning": log.warning, "error": log.error}[note.level]
    emit(note.event, **note.fields)
