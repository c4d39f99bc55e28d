"""`LoadMeter`: the rate over a sliding window and the utilization it reports, on a manual
clock (no time passes in these tests)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.orca import LoadMeter


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_rate_is_requests_over_the_window() -> None:
    """10 requests a second for 5 s: the 2 s window says 10/s (within the one request a
    window's edge may hold), utilization rate / capacity."""
    clock = Clock()
    meter = LoadMeter(capacity=40, window=2.0, buckets=20, clock=clock)
    for _ in range(50):
        clock.now += 0.1
        meter.record()
    report = meter.report()
    assert report.rps_fractional == pytest.approx(10.0, abs=1 / 1.9)
    assert report.application_utilization == pytest.approx(report.rps_fractional / 40)
    assert report.cpu_utilization == 0.0
    assert report.rps_fractional / report.application_utilization == pytest.approx(40)


def test_old_requests_leave_the_window() -> None:
    """A burst long ago counts for nothing; an idle backend reports 0."""
    clock = Clock()
    meter = LoadMeter(capacity=10, window=1.0, buckets=10, clock=clock)
    for _ in range(100):
        meter.record()
    clock.now += 5
    assert meter.report().rps_fractional == 0.0
    assert meter.report().application_utilization == 0.0


def test_a_young_meter_divides_by_its_age() -> None:
    """Before a whole window has passed, the rate is over the time since the meter started."""
    clock = Clock()
    meter = LoadMeter(capacity=10, window=10.0, clock=clock)
    clock.now += 0.5
    for _ in range(5):
        meter.record()
    assert meter.rate() == pytest.approx(10.0)


@given(
    st.floats(min_value=5, max_value=1000),
    st.floats(min_value=1, max_value=1e4),
    st.integers(min_value=10, max_value=50),
)
def test_weight_by_rate_over_utilization_is_the_capacity(
    rate: float, capacity: float, buckets: int
) -> None:
    """Whatever rate a backend receives, rps / utilization — what clients weigh by — is its
    capacity: the weight converges to the capacity, independent of timing. (The rate itself
    is off by at most a bucket and a request: 25 % at 5 requests/s over 10 buckets.)"""
    clock = Clock()
    meter = LoadMeter(capacity=capacity, window=2.0, buckets=buckets, clock=clock)
    for _ in range(int(rate * 3)):
        clock.now += 1 / rate
        meter.record()
    report = meter.report()
    assert report.rps_fractional == pytest.approx(rate, rel=0.25)
    assert report.rps_fractional / report.application_utilization == pytest.approx(capacity)


def test_errors_are_reported_as_eps() -> None:
    """`record(error=True)` and `record_error()` count errors per second beside the requests."""
    clock = Clock()
    meter = LoadMeter(capacity=10, window=1.0, clock=clock)
    clock.now += 1
    meter.record(error=True)
    meter.record()
    meter.record_error()
    report = meter.report()
    assert report.rps_fractional > 0
    assert report.eps == report.rps_fractional  # two requests, two errors, one window


def test_the_capacity_changes_while_running() -> None:
    """`set_capacity` applies at once; a bad capacity is refused and the old one kept."""
    clock = Clock()
    meter = LoadMeter(capacity=10, window=1.0, clock=clock)
    clock.now += 1
    for _ in range(5):
        meter.record()
    before = meter.report()
    meter.set_capacity(20)
    after = meter.report()
    assert after.rps_fractional == before.rps_fractional > 0
    assert after.application_utilization == pytest.approx(before.application_utilization / 2)
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValidationError, match="capacity: must be a finite number"):
            meter.set_capacity(bad)
    assert meter.capacity == 20


def test_the_cpu_is_cpu_seconds_over_wall_seconds_over_cpus() -> None:
    """`report_cpu`: 1.5 CPU-seconds used in 1 s on 2 CPUs is 0.75; no capacity then."""
    clock, cpu = Clock(), Clock(50.0)
    meter = LoadMeter(report_cpu=True, window=2.0, clock=clock, cpu_clock=cpu, cpus=2)
    clock.now += 1
    cpu.now += 1.5
    report = meter.report()
    assert report.cpu_utilization == pytest.approx(0.75)
    assert report.application_utilization == 0.0
    with pytest.raises(ValidationError, match="reports the CPU"):
        meter.set_capacity(5)


def test_the_cpu_is_measured_over_the_last_window() -> None:
    """Samples older than the window are dropped: a busy past does not weigh on an idle now."""
    clock, cpu = Clock(), Clock(0.0)
    meter = LoadMeter(report_cpu=True, window=1.0, clock=clock, cpu_clock=cpu, cpus=1)
    for _ in range(10):  # busy: a full CPU for 1 s, sampled every 0.1 s
        clock.now += 0.1
        cpu.now += 0.1
        meter.report()
    for _ in range(20):  # then idle for 2 s
        clock.now += 0.1
        meter.report()
    assert meter.report().cpu_utilization == pytest.approx(0.0)


def test_capacity_and_cpu_exclude_each_other() -> None:
    """Both at once is one clear error."""
    with pytest.raises(ValidationError, match="not both"):
        LoadMeter(capacity=5, report_cpu=True)
