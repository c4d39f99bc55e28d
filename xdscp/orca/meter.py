"""`LoadMeter`: a backend's request rate over a short sliding window, turned into a report.

The rate is counted in buckets of `window / buckets` seconds: the requests of the last full
buckets and of the current partial one, divided by the time they cover (so a rate is exact
at any moment, without a timer). Utilization is either `rate / capacity` (reported as
`application_utilization`; a client weighing by `rate / utilization` then converges on the
capacity, whatever share it sends), or the process's CPU (`cpu_utilization`: CPU seconds the
process used over the window / wall seconds / CPUs it may run on).

Clocks are injected, so tests are deterministic; the meter is thread-safe.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from xdscp.errors import ValidationError
from xdscp.orca.report import LoadReport

Clock = Callable[[], float]


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used, all its threads included."""
    times = os.times()
    return times.user + times.system


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_capacity(capacity: float) -> float:
    """A capacity in requests per second: finite and above 0."""
    if isinstance(capacity, bool) or not isinstance(capacity, int | float):
        raise ValidationError("capacity", f"must be a number, got {capacity!r}")
    if not math.isfinite(capacity) or capacity <= 0:
        raise ValidationError(
            "capacity", f"must be a finite number of requests/s above 0, got {capacity}"
        )
    return float(capacity)


class _Window:
    """Counts per bucket over the last `window` seconds (not locked: the meter locks)."""

    def __init__(self, window: float, buckets: int, now: float) -> None:
        self.width = window / buckets
        self.buckets = buckets
        self.start = now
        self.counts: deque[tuple[int, int]] = deque()  # (bucket index, count), oldest first

    def _trim(self, index: int) -> None:
        while self.counts and self.counts[0][0] <= index - self.buckets:
            self.counts.popleft()

    def add(self, now: float) -> None:
        index = math.floor(now / self.width)
        self._trim(index)
        if self.counts and self.counts[-1][0] == index:
            self.counts[-1] = (index, self.counts[-1][1] + 1)
        else:
            self.counts.append((index, 1))

    def rate(self, now: float) -> float:
        index = math.floor(now / self.width)
        self._trim(index)
        covered = (self.buckets - 1) * self.width + (now - index * self.width)
        covered = min(covered, now - self.start)
        if covered <= 0:
            return 0.0
        return sum(count for _, count in self.counts) / covered


class _CpuGauge:
    """The process's CPU over about one window, from samples taken when a report is made."""

    def __init__(self, window: float, clock: Clock, cpu_clock: Clock, cpus: int) -> None:
        self.window = window
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.cpus = cpus
        self.samples: deque[tuple[float, float]] = deque([(clock(), cpu_clock())])

    def utilization(self) -> float:
        now, used = self.clock(), self.cpu_clock()
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()
        then, used_then = self.samples[0]
        if now - self.samples[-1][0] >= self.window / 10:
            self.samples.append((now, used))
        if now <= then:
            return 0.0
        return max(0.0, (used - used_then) / (now - then) / self.cpus)


class LoadMeter:
    """Counts requests (and errors) and makes the `LoadReport` a backend sends.

    `capacity` (requests/s) makes utilization `rate / capacity`; `report_cpu=True` reports the
    process's CPU instead (the two exclude each other); with neither, the report carries the
    rates alone. `set_capacity` changes the capacity while the backend runs.
    """

    def __init__(
        self,
        capacity: float | None = None,
        *,
        report_cpu: bool = False,
        window: float = 2.0,
        buckets: int = 20,
        clock: Clock = time.monotonic,
        cpu_clock: Clock = process_cpu_seconds,
        cpus: int | None = None,
    ) -> None:
        if capacity is not None and report_cpu:
            raise ValidationError("capacity", "report either a capacity or the CPU, not both")
        if not math.isfinite(window) or window <= 0 or buckets < 1:
            raise ValidationError(
                "window", f"needs a window above 0 and buckets >= 1, got {window}, {buckets}"
            )
        self._capacity = None if capacity is None else check_capacity(capacity)
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = _Window(window, buckets, clock())
        self._errors = _Window(window, buckets, clock())
        self._cpu = _CpuGauge(window, clock, cpu_clock, cpus or cpu_count()) if report_cpu else None

    @property
    def capacity(self) -> float | None:
        """Requests per second the backend can take (None: not reporting by capacity)."""
        return self._capacity

    def set_capacity(self, capacity: float) -> None:
        """Report against a new capacity from now on (not when reporting the CPU)."""
        if self._cpu is not None:
            raise ValidationError("capacity", "this meter reports the CPU, not a capacity")
        self._capacity = check_capacity(capacity)

    def record(self, *, error: bool = False) -> None:
        """Count one request (and, with `error=True`, one error)."""
        with self._lock:
            now = self._clock()
            self._requests.add(now)
            if error:
                self._errors.add(now)

    def record_error(self) -> None:
        """Count one error for a request already counted."""
        with self._lock:
            self._errors.add(self._clock())

    def rate(self) -> float:
        """Requests per second over the window."""
        with self._lock:
            return self._requests.rate(self._clock())

    def report(self) -> LoadReport:
        """The current report: rates, and utilization by capacity or CPU."""
        with self._lock:
            now = self._clock()
            rate, errors = self._requests.rate(now), self._errors.rate(now)
            cpu = self._cpu.utilization() if self._cpu is not None else 0.0
        application = rate / self._capacity if self._capacity is not None else 0.0
        return LoadReport(
            rps_fractional=rate,
            eps=errors,
            application_utilization=application,
            cpu_utilization=cpu,
        )
