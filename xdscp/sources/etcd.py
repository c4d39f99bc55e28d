"""The etcd registry source: watches the registry prefixes and publishes whole service sets.

Key layout and value formats: see `xdscp.registry.schema`. Behaviour:

- every watched prefix is listed, then watched (`xdscp.etcd.PrefixWatcher`: nothing lost across
  restarts, compactions re-listed and diffed); `ready` turns True at the first publish, once
  every prefix has been listed;
- bad entries are skipped with one `registry_entry_rejected` warning and a count in
  `xdscp_registry_rejected_total{reason}`; the service's other endpoints are untouched;
- while etcd is unreachable the last published set stays in force (nothing is published), the
  outage is logged and `xdscp_registry_etcd_up` is 0;
- publishing is throttled: the first change is published at once (after the changes already
  received are applied), further changes within `min_interval` are gathered into one publish.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from xdscp.errors import DnsError
from xdscp.etcd import EtcdClient, PrefixWatcher, WatchEvent
from xdscp.model import ServiceSet, ServiceUpdate
from xdscp.registry import RegistryLayout, RegistryState, Rejection
from xdscp.sources.base import Publish, SourceStatus

log = structlog.get_logger("xdscp.sources.etcd")


class Resolver(Protocol):
    """Turns a hostname into IP literals (the DNS source can supply a richer one)."""

    async def resolve(self, host: str) -> list[str]:
        """The host's addresses, preferred first; raise DnsError when it does not resolve."""
        ...


class StdlibResolver:
    """`loop.getaddrinfo`, the operating system's resolver."""

    async def resolve(self, host: str) -> list[str]:
        """The host's addresses in getaddrinfo order, without duplicates."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DnsError(f"{host}: {exc}") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RegistryMetrics:
    """The registry's Prometheus metrics, registered in `metrics_registry`."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "xdscp_registry_rejected",
            "Registry entries skipped because they are invalid, by reason.",
            ["reason"],
            registry=metrics_registry,
        )
        self.etcd_up = Gauge(
            "xdscp_registry_etcd_up",
            "1 while etcd answers the registry watches.",
            registry=metrics_registry,
        )
        self.etcd_failures = Counter(
            "xdscp_registry_etcd_failures",
            "Times the registry lost etcd (last known services kept).",
            registry=metrics_registry,
        )
        self.publishes = Counter(
            "xdscp_registry_publishes", "Service sets published.", registry=metrics_registry
        )
        self.services = Gauge(
            "xdscp_registry_services", "Services published.", registry=metrics_registry
        )
        self.endpoints = Gauge(
            "xdscp_registry_endpoints", "Endpoints published.", registry=metrics_registry
        )


class EtcdRegistrySource(SourceStatus):
    """A `Source` publishing the services registered in etcd; `last_error` says why etcd does
    not answer the registry's watches."""

    def __init__(
        self,
        client: EtcdClient,
        layout: RegistryLayout | None = None,
        *,
        resolver: Resolver | None = None,
        metrics: RegistryMetrics | None = None,
        min_interval: float = 0.05,
        resolve_interval: float = 30.0,
    ) -> None:
        self._client = client
        self._state = RegistryState(layout)
        self._resolver = resolver or StdlibResolver()
        self.metrics = metrics or RegistryMetrics(CollectorRegistry())
        self._min_interval = min_interval
        self._resolve_interval = resolve_interval
        self._addresses: dict[str, str | None] = {}
        self._resolved_at = 0.0
        self._changed = asyncio.Event()
        self._pending: set[str] = set()
        self._published: ServiceSet | None = None
        self._fresh = True  # the next publish is a run's first: the whole set, no change hint
        super().__init__()

    @property
    def name(self) -> str:
        """`etcd`."""
        return "etcd"

    def _watches(self) -> list[tuple[str, Callable[[list[WatchEvent]], list[Rejection]]]]:
        layout, state = self._state.layout, self._state
        watches: list[tuple[str, Callable[[list[WatchEvent]], list[Rejection]]]] = [
            (layout.services_prefix, state.apply_native),
            (layout.policies_prefix, state.apply_policies),
            (layout.routes_prefix, state.apply_routes),
        ]
        watches.extend(
            (target.prefix, functools.partial(state.apply_grpc_go, target))
            for target in layout.grpc_targets
        )
        return watches

    async def run(self, publish: Publish) -> None:
        """Watch every registry prefix and publish on change, until cancelled.

        Every run starts from a fresh listing (a restart after a failure re-reads etcd): what
        was published before stays in force until that listing is complete.
        """
        self._state, self._fresh = RegistryState(self._state.layout), True
        watches = self._watches()
        self._pending = {prefix for prefix, _ in watches}
        async with asyncio.TaskGroup() as group:
            for prefix, apply in watches:
                group.create_task(self._follow(prefix, apply))
            group.create_task(self._publish_loop(publish))

    def _on_status(self, healthy: bool, reason: str) -> None:
        self.metrics.etcd_up.set(1 if healthy else 0)
        self._error = None if healthy else reason
        if healthy:
            return
        self.metrics.etcd_failures.inc()
        if self._published is None:
            log.warning("registry_not_ready", reason=reason)
        else:
            log.warning("registry_etcd_unavailable", reason=reason, kept=len(self._published))

    async def _follow(
        self, prefix: str, apply: Callable[[list[WatchEvent]], list[Rejection]]
    ) -> None:
        watcher = PrefixWatcher(self._client, prefix.encode(), on_status=self._on_status)
        async for changes in watcher.changes():
            self._report(apply(changes))
            self._pending.discard(prefix)
            self._changed.set()

    def _report(self, rejections: Iterable[Rejection]) -> None:
        for rejection in rejections:
            self.metrics.rejected.labels(rejection.reason).inc()
            log.warning(
                "registry_entry_rejected",
                key=rejection.key,
                reason=rejection.reason,
                error=rejection.message,
            )

    async def _publish_loop(self, publish: Publish) -> None:
        last = float("-inf")
        while True:
            timeout = self._resolve_interval if self._addresses else None
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                await self._refresh_addresses(force=True)
            await _drain()
            wait = last + self._min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._changed.clear()
            if self._pending:
                continue
            await self._refresh_addresses(force=False)
            services, rejections = self._state.build(self._addresses.get)
            self._report(rejections)
            if self._fresh:  # removals since the previous run are not in the hint
                services, self._fresh = ServiceUpdate(services, None), False
                self._publish(publish, services)
                last = time.monotonic()
            elif self._state.changed or self._published is None:
                self._publish(publish, services)
                last = time.monotonic()

    def _publish(self, publish: Publish, services: ServiceSet) -> None:
        self._published = services
        publish(services)
        self._ready = True
        self.metrics.publishes.inc()
        self.metrics.services.set(len(services))
        self.metrics.endpoints.set(self._state.endpoint_count)

    async def _refresh_addresses(self, *, force: bool) -> None:
        hosts = self._state.hostnames()
        for gone in self._addresses.keys() - hosts:
            del self._addresses[gone]
        todo = hosts if force else hosts - self._addresses.keys()
        changed = [h for h, ip in await _resolve_all(self._resolver, todo) if self._set(h, ip)]
        self._state.touch_hostnames(changed)

    def _set(self, host: str, address: str | None) -> bool:
        if host in self._addresses and self._addresses[host] == address:
            return False
        self._addresses[host] = address
        return True


async def _resolve_one(resolver: Resolver, host: str) -> tuple[str, str | None]:
    try:
        addresses = await resolver.resolve(host)
    except DnsError as exc:
        log.warning("registry_host_unresolvable", host=host, error=str(exc))
        return host, None
    return host, addresses[0] if addresses else None


async def _resolve_all(resolver: Resolver, hosts: Iterable[str]) -> list[tuple[str, str | None]]:
    jobs: list[Awaitable[tuple[str, str | None]]] = [_resolve_one(resolver, h) for h in hosts]
    return list(await asyncio.gather(*jobs)) if jobs else []


async def _drain() -> None:
    """Let the watch tasks apply what they have already received before building."""
    for _ in range(3):
        await asyncio.sleep(0)
