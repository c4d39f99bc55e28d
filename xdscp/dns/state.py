"""The refresh state machine of one DNS service: synchronous and I/O-free.

The async shell (`xdscp.sources.dns`) queries DNS, then feeds the outcome here with the current
time; the tracker answers with a `Step`: how long to wait before the next query, whether the
published service changed, and at most one log `Note` (only when the state or the endpoints
change, never once per retry).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from xdscp.dns.config import DnsService, MissingPolicy, RefreshPolicy
from xdscp.dns.records import clamp_interval
from xdscp.model import Endpoint, Service


class Status(StrEnum):
    """Where a DNS service stands."""

    PENDING = "pending"
    """Never answered yet (nothing published)."""
    OK = "ok"
    """The last query answered with endpoints."""
    FAILING = "failing"
    """SERVFAIL, timeout, REFUSED...: retrying with backoff, last good endpoints kept."""
    MISSING = "missing"
    """NXDOMAIN or no records, within `missing_grace`: last good endpoints kept."""
    GONE = "gone"
    """Missing beyond `missing_grace`: `on_missing` applied."""


@dataclass(frozen=True, slots=True)
class Note:
    """A log event for the shell to emit: constant name, level, keyword fields."""

    event: str
    level: str
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """The tracker's answer to one outcome."""

    delay: float
    changed: bool
    note: Note | None = None


def backoff_delay(policy: RefreshPolicy, failures: int, rng: random.Random) -> float:
    """Delay before retry number `failures` (>= 1): doubling, jittered, never above the max."""
    base = min(policy.backoff_max, policy.backoff_initial * 2.0 ** min(failures - 1, 60))
    jitter = rng.uniform(1.0 - policy.backoff_jitter, 1.0 + policy.backoff_jitter)
    return min(policy.backoff_max, base * jitter)


class ServiceTracker:
    """Follows one declared service through answers and failures."""

    def __init__(
        self, declaration: DnsService, policy: RefreshPolicy, rng: random.Random | None = None
    ) -> None:
        self.declaration = declaration
        self.policy = policy
        self.status = Status.PENDING
        self.reason = ""
        self.service: Service | None = None
        """What is published for this declaration; None means it is left out of the set."""
        self.settled = False
        """True once DNS has given a definitive answer (records, NXDOMAIN or no records)."""
        self._rng = rng or random.Random()
        self._failures = 0
        self._missing_since: float | None = None

    def succeeded(self, endpoints: tuple[Endpoint, ...], ttl: float) -> Step:
        """Records were found (`endpoints` non-empty); `ttl` is the smallest TTL seen."""
        decl = self.declaration
        service = Service(decl.service, endpoints, decl.effective_policy)
        changed = service != self.service
        before = self.status
        self.service, self.status, self.reason, self.settled = service, Status.OK, "", True
        self._failures, self._missing_since = 0, None
        note = None
        if before is not Status.OK:
            event = "dns_service_resolved" if before is Status.PENDING else "dns_service_recovered"
            note = Note(event, "info", self._fields(previous=str(before)))
        elif changed:
            note = Note("dns_service_changed", "info", self._fields())
        return Step(clamp_interval(ttl, self.policy), changed, note)

    def failed(self, reason: str, *, transient: bool, now: float) -> Step:
        """A lookup failed; `transient` is False for NXDOMAIN / no records."""
        self._failures += 1
        delay = backoff_delay(self.policy, self._failures, self._rng)
        if transient:
            return self._transition(Status.FAILING, reason, delay, changed=False)
        self.settled = True
        if self._missing_since is None:
            self._missing_since = now
        left = self._missing_since + self.policy.missing_grace - now
        if left > 0:
            return self._transition(Status.MISSING, reason, min(delay, left), changed=False)
        changed = False
        if self.policy.on_missing is MissingPolicy.EMPTY:
            decl = self.declaration
            empty = Service(decl.service, (), decl.effective_policy)
            changed, self.service = empty != self.service, empty
        return self._transition(Status.GONE, reason, delay, changed=changed)

    def _transition(self, status: Status, reason: str, delay: float, *, changed: bool) -> Step:
        if (status, reason) == (self.status, self.reason):
            return Step(delay, changed)
        self.status, self.reason = status, reason
        return Step(delay, changed, self._failure_note(status, delay))

    def _failure_note(self, status: Status, delay: float) -> Note:
        fields = self._fields(retry_in=round(delay, 3))
        if status is Status.FAILING:
            event = "dns_service_failing" if self.service else "dns_service_unresolved"
            return Note(event, "warning", fields)
        if status is Status.MISSING:
            return Note("dns_service_missing", "warning", fields)
        if self.policy.on_missing is MissingPolicy.EMPTY:
            return Note("dns_service_emptied", "error", fields)
        return Note("dns_service_missing_kept", "error", fields)

    def _fields(self, **extra: object) -> dict[str, object]:
        decl = self.declaration
        kept = len(self.service.endpoints) if self.service else 0
        fields: dict[str, object] = {
            "service": decl.service,
            "dns_name": decl.dns_name,
            "record_type": str(decl.record_type),
            "status": str(self.status),
            "endpoints": kept,
        }
        if self.reason:
            fields["reason"] = self.reason
        return fields | extra
