"""The health stage: checks endpoints and reports the verdicts.

Between the sources and the translation: `follow(merged, changed)` follows the merged set
(which endpoints to check); `run(report)` checks and hands every batch of verdicts to
`report` (the plane gives them to its `Pipeline`, whose `HealthOverlay` serves failing
endpoints UNHEALTHY). The stage reads that overlay (its verdicts seed the checker and show in
`status()`), never writes it.

- Without etcd, this replica checks and reports its own verdicts.
- With etcd, the replicas elect one checker (`Election`); it writes verdicts under
  `<health>/results/`, and every replica, the checker too, reports what it watches there.

Nothing runs until a service asks for control-plane checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from xdscp.errors import ValidationError
from xdscp.etcd import EtcdClient, PrefixWatcher, WatchEvent, WatchEventType
from xdscp.health.checker import Checker
from xdscp.health.election import Election
from xdscp.health.machine import Verdict
from xdscp.health.metrics import HealthMetrics
from xdscp.health.probes import Prober
from xdscp.health.results import HealthLayout, encode_result, parse_result
from xdscp.health.targets import HealthOverlay, Target, TargetKey, targets_of
from xdscp.model import ServiceSet
from xdscp.registry import display_key
from xdscp.retry import Backoff

log = structlog.get_logger(__name__)
RESTART_MAX_BACKOFF_S = 30.0

Report = Callable[[Sequence[tuple[TargetKey, Verdict | None]]], object]
"""Where a batch of verdicts goes (None: the endpoint is no longer judged)."""


@dataclass(frozen=True, slots=True)
class HealthCoordination:
    """How replicas share one checker: the etcd client, the keys, who this replica is and
    the leader lease's TTL (a dead checker is replaced within it)."""

    client: EtcdClient
    layout: HealthLayout
    identity: str
    lease_ttl: int  # seconds (`ServeOptions.health_lease_ttl_s`)


class _EtcdSink:
    """The elected checker's verdicts, written for every replica."""

    def __init__(self, coordination: HealthCoordination) -> None:
        self._c = coordination

    async def report(self, key: TargetKey, verdict: Verdict) -> None:
        value = encode_result(verdict, self._c.identity, time.time())
        await self._c.client.put(self._c.layout.result_key(key), value)

    async def forget(self, key: TargetKey) -> None:
        await self._c.client.delete(self._c.layout.result_key(key))


class _LocalSink:
    """This replica's own verdicts, applied at once."""

    def __init__(self, apply: Callable[[TargetKey, Verdict | None], None]) -> None:
        self._apply = apply

    async def report(self, key: TargetKey, verdict: Verdict) -> None:
        self._apply(key, verdict)

    async def forget(self, key: TargetKey) -> None:
        self._apply(key, None)


class HealthStage:
    """Built once by the plane; `run()` for as long as the plane runs."""

    def __init__(
        self,
        metrics: HealthMetrics,
        overlay: HealthOverlay,
        coordination: HealthCoordination | None = None,
        *,
        prober: Prober | None = None,
    ) -> None:
        """`overlay`: the verdicts as applied (read only: `report` applies them)."""
        self._metrics, self._overlay, self._coordination = metrics, overlay, coordination
        self._report: Report = _unstarted
        self._targets: dict[TargetKey, Target] = {}
        self._by_service: dict[str, set[TargetKey]] = {}
        self._wanted = asyncio.Event()
        self._seen: set[TargetKey] = set()  # endpoints with a state gauge
        sink = _LocalSink(self._apply_one) if coordination is None else _EtcdSink(coordination)
        self.checker = Checker(sink, metrics, seed=self._seed, prober=prober)
        self.election: Election | None = None
        if coordination is not None:
            self.election = Election(
                coordination.client, coordination.layout.leader_key,
                coordination.identity, coordination.lease_ttl,
            )  # fmt: skip

    def follow(self, merged: ServiceSet, names: Iterable[str] | None) -> None:
        """Follow the merged set (the overlay already does); `names` changed (None:
        anything may have)."""
        self._metrics.failed_open.set(len(self._overlay.failed_open))
        names = set(merged) | set(self._by_service) if names is None else set(names)
        changed = False
        for name in names:
            before = {key: self._targets.pop(key) for key in self._by_service.pop(name, ())}
            found = {t.key: t for t in targets_of(merged, (name,))}
            changed = changed or found != before
            if found:
                self._by_service[name] = set(found)
                self._targets.update(found)
        if changed:
            self.checker.set_targets(self._targets)
            if self._targets:
                self._wanted.set()

    def _seed(self, key: TargetKey) -> Verdict:
        return self._overlay.verdict(key)

    def _apply_one(self, key: TargetKey, verdict: Verdict | None) -> None:
        self._apply([(key, verdict)])

    def _apply(self, verdicts: Iterable[tuple[TargetKey, Verdict | None]]) -> None:
        """Count the verdicts and report them; note services that began failing open."""
        batch = list(verdicts)
        gauge = self._metrics.endpoint_state
        for (service, endpoint), verdict in batch:
            if verdict is None:
                if (service, endpoint) in self._seen:
                    gauge.remove(service, endpoint)
                    self._seen.discard((service, endpoint))
            else:
                gauge.labels(service, endpoint).set(1 if verdict is Verdict.HEALTHY else 0)
                self._seen.add((service, endpoint))
        failed_open = set(self._overlay.failed_open)
        self._report(batch)
        for service in sorted(self._overlay.failed_open - failed_open):
            log.warning("health_failed_open", service=service)
        self._metrics.failed_open.set(len(self._overlay.failed_open))

    async def run(self, report: Report) -> None:
        """Check (or follow the checker) until cancelled, once a service asks for checks,
        handing every batch of verdicts to `report`; an unexpected failure is logged and
        the stage restarts (verdicts kept)."""
        self._report = report
        await self._wanted.wait()
        backoff = Backoff(0.1, RESTART_MAX_BACKOFF_S)
        while True:
            try:
                await self._run_once()
            except Exception:  # a bug here must not stop serving
                log.exception("health_stage_failed")
            await asyncio.sleep(backoff.next_delay())

    async def _run_once(self) -> None:
        if self.election is None:
            self._metrics.checker.set(1)
            await self.checker.run()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow_results(self._coordination))
            group.create_task(self.election.lead(self._check))

    async def _check(self) -> None:
        self._metrics.checker.set(1)
        try:
            await self.checker.run()
        finally:
            self._metrics.checker.set(0)

    async def _follow_results(self, coordination: HealthCoordination | None) -> None:
        """Apply every verdict written under the results prefix (ours included)."""
        if coordination is None:
            return
        layout = coordination.layout
        watcher = PrefixWatcher(coordination.client, layout.results_prefix)
        async for events in watcher.changes():
            self._apply(v for e in events if (v := self._parse(layout, e)) is not None)

    @staticmethod
    def _parse(layout: HealthLayout, event: WatchEvent) -> tuple[TargetKey, Verdict | None] | None:
        try:
            key = layout.parse_key(event.key)
            return key, None if event.kind is WatchEventType.DELETE else parse_result(event.value)
        except ValidationError as exc:
            log.warning("health_result_rejected", key=display_key(event.key), error=str(exc))
            return None

    def status(self) -> dict[str, Any]:
        """`/debug/health`: who checks, the verdicts applied, and this replica's checks."""
        election = self.election
        return {
            "mode": "local" if election is None else "etcd",
            "checking": election is None or election.leading,
            "leader": None if election is None else election.leader,
            "targets": len(self._targets),
            "verdicts": {
                service: {endpoint: str(v) for endpoint, v in sorted(found.items())}
                for service, found in sorted(self._overlay.verdicts().items())
            },
            "failed_open": sorted(self._overlay.failed_open),
            "checks": self.checker.status(),
        }


def _unstarted(_verdicts: Sequence[tuple[TargetKey, Verdict | None]]) -> None:
    """No verdict is reported before `run()`: nothing checks before it."""
