"""The prober loop: checks each target on its interval, feeds the state machine, reports.

`Checker.run()` lasts as long as this replica checks (always without etcd; while elected
with it). `set_targets` may be called at any time; removed targets stop being checked and
their verdict is forgotten (`ResultSink.forget`). A verdict is reported whenever it differs
from the last one reported, so a failed report (etcd unavailable) is retried after the next
check rather than lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from xdscp.errors import XdscpError
from xdscp.health.machine import EndpointState, Verdict, observe
from xdscp.health.metrics import HealthMetrics
from xdscp.health.probes import Prober, ProbeResult
from xdscp.health.targets import Target, TargetKey

log = structlog.get_logger(__name__)


class ResultSink(Protocol):
    """Where a checker's verdicts go: the local overlay, or etcd for every replica."""

    async def report(self, key: TargetKey, verdict: Verdict) -> None:
        """Record one endpoint's verdict (raises `XdscpError` when it could not)."""

    async def forget(self, key: TargetKey) -> None:
        """The endpoint is no longer checked: drop its verdict."""


@dataclass(slots=True)
class _Probe:
    """One target being checked: its task, state and what was last seen and reported."""

    target: Target
    task: asyncio.Task[None] | None = None
    state: EndpointState = field(default_factory=EndpointState)
    reported: Verdict = Verdict.UNKNOWN
    last: ProbeResult | None = None
    checked_at: float = 0.0
    checks: int = 0


class Checker:
    """Checks every target given to `set_targets` while `run()` runs."""

    def __init__(
        self,
        sink: ResultSink,
        metrics: HealthMetrics,
        *,
        seed: Callable[[TargetKey], Verdict] = lambda _key: Verdict.UNKNOWN,
        prober: Prober | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._sink, self._metrics, self._seed = sink, metrics, seed
        self._prober = prober or Prober()
        self._rng = rng or random.Random()  # spreading checks, not secrets
        self._wanted: dict[TargetKey, Target] = {}
        self._probes: dict[TargetKey, _Probe] = {}
        self._changed = asyncio.Event()

    def set_targets(self, targets: Mapping[TargetKey, Target]) -> None:
        """Check exactly these targets from now on."""
        self._wanted = dict(targets)
        self._changed.set()

    async def run(self) -> None:
        """Check until cancelled; the loops stop and the channels close on the way out."""
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                for key in self._reconcile():
                    await self._forget(key)
        finally:
            probes = [p.task for p in self._probes.values() if p.task is not None]
            for task in probes:
                task.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
            self._probes.clear()
            await self._prober.close()

    def _reconcile(self) -> list[TargetKey]:
        """Start loops for new (or changed) targets, stop the others; the removed keys."""
        removed = []
        for key, probe in list(self._probes.items()):
            wanted = self._wanted.get(key)
            if wanted == probe.target:
                continue
            if probe.task is not None:
                probe.task.cancel()
            del self._probes[key]
            if wanted is None:
                removed.append(key)
        for key, target in self._wanted.items():
            if key not in self._probes:
                seed = self._seed(key)
                probe = _Probe(target, state=EndpointState(seed), reported=seed)
                probe.task = asyncio.create_task(self._loop(probe), name=f"health {key}")
                self._probes[key] = probe
        return removed

    async def _forget(self, key: TargetKey) -> None:
        await self._prober.forget(key)
        try:
            await self._sink.forget(key)
        except XdscpError as exc:
            log.warning("health_forget_failed", service=key[0], endpoint=key[1], error=str(exc))

    async def _loop(self, probe: _Probe) -> None:
        check = probe.target.check
        await asyncio.sleep(self._rng.uniform(0, check.jitter))
        while True:
            started = time.monotonic()
            result = await self._prober.check(probe.target)
            self._observe(probe, result)
            await self._report(probe)
            spent = time.monotonic() - started
            jitter = self._rng.uniform(0, check.jitter)
            await asyncio.sleep(max(0.0, check.interval - spent) + jitter)

    def _observe(self, probe: _Probe, result: ProbeResult) -> None:
        target = probe.target
        probe.last, probe.checked_at, probe.checks = result, time.time(), probe.checks + 1
        self._metrics.check_seconds.labels(
            str(target.check.kind), "ok" if result.ok else "failed"
        ).observe(result.seconds)
        probe.state, transition = observe(probe.state, result.ok, target.thresholds)
        if transition is not None:
            self._metrics.transitions.labels(target.service, str(transition.after)).inc()
            log.info(
                "health_transition", service=target.service, endpoint=target.key[1],
                before=str(transition.before), after=str(transition.after), detail=result.detail,
            )  # fmt: skip

    async def _report(self, probe: _Probe) -> None:
        verdict = probe.state.verdict
        if verdict is probe.reported or verdict is Verdict.UNKNOWN:
            return
        try:
            await self._sink.report(probe.target.key, verdict)
        except XdscpError as exc:  # retried after the next check
            log.warning(
                "health_report_failed", service=probe.target.service,
                endpoint=probe.target.key[1], error=str(exc),
            )  # fmt: skip
            return
        probe.reported = verdict

    def status(self) -> dict[str, dict[str, Any]]:
        """Per service and endpoint: verdict, streak, last check (for `/debug/health`)."""
        out: dict[str, dict[str, Any]] = {}
        for (service, endpoint), probe in sorted(self._probes.items()):
            last = probe.last
            out.setdefault(service, {})[endpoint] = {
                "verdict": str(probe.state.verdict),
                "successes": probe.state.successes,
                "failures": probe.state.failures,
                "checks": probe.checks,
                "last_ok": None if last is None else last.ok,
                "last_seconds": None if last is None else round(last.seconds, 6),
                "last_error": None if last is None or last.ok else last.detail,
                "checked_at": probe.checked_at or None,
            }
        return out
