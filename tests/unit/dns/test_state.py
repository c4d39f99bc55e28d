"""The refresh state machine: backoff schedule, keep-last-good, once-per-change notes."""

from __future__ import annotations

import random

import pytest

from xdscp.dns import DnsService, MissingPolicy, RefreshPolicy, ServiceTracker, Status
from xdscp.dns.state import backoff_delay
from xdscp.model import Endpoint

ONE = (Endpoint("10.0.0.1", 80),)
TWO = (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80))
DECL = DnsService("api", "api.test", port=80)


def tracker(**policy: object) -> ServiceTracker:
    """A tracker for DECL with a seeded random generator."""
    return ServiceTracker(DECL, RefreshPolicy(**policy), random.Random(7))  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_max_without_jitter() -> None:
    """With no jitter the schedule is initial * 2^(n-1), capped at backoff_max."""
    policy = RefreshPolicy(backoff_initial=1, backoff_max=10, backoff_jitter=0)
    rng = random.Random(1)
    assert [backoff_delay(policy, n, rng) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_stays_within_bounds() -> None:
    """Jittered delays stay within +-jitter of the base and never exceed backoff_max."""
    policy = RefreshPolicy(backoff_initial=1, backoff_max=10, backoff_jitter=0.2)
    rng = random.Random(3)
    for n in range(1, 200):
        base = min(10.0, 2.0 ** min(n - 1, 60))
        delay = backoff_delay(policy, n, rng)
        assert base * 0.8 <= delay <= min(10.0, base * 1.2)
    delays = {backoff_delay(policy, 1, rng) for _ in range(20)}
    assert len(delays) > 1


def test_first_answer_publishes_and_sleeps_the_clamped_ttl() -> None:
    """The first answer changes the service, notes `dns_service_resolved`, waits the TTL."""
    t = tracker(min_interval=5, max_interval=60)
    step = t.succeeded(TWO, ttl=2)
    assert step.changed
    assert step.delay == 5
    assert step.note is not None
    assert step.note.event == "dns_service_resolved"
    assert t.service is not None
    assert t.service.endpoints == TWO
    assert (t.status, t.settled) == (Status.OK, True)


def test_an_unchanged_answer_is_not_a_change() -> None:
    """The same endpoints again: no change and no log note."""
    t = tracker()
    t.succeeded(TWO, ttl=30)
    step = t.succeeded(TWO, ttl=30)
    assert (step.changed, step.note) == (False, None)
    changed = t.succeeded(ONE, ttl=30)
    assert changed.changed
    assert changed.note is not None
    assert changed.note.event == "dns_service_changed"


def test_transient_failures_keep_the_last_good_and_note_once() -> None:
    """SERVFAIL keeps the endpoints, notes once; a new reason notes again; recovery notes."""
    t = tracker(backoff_jitter=0)
    t.succeeded(TWO, ttl=30)
    steps = [t.failed("servfail", transient=True, now=n) for n in range(5)]
    assert [s.changed for s in steps] == [False] * 5
    assert [s.note.event if s.note else None for s in steps] == ["dns_service_failing"] + [None] * 4
    assert [s.delay for s in steps] == [1, 2, 4, 8, 16]
    assert t.service is not None
    assert t.service.endpoints == TWO
    assert t.status is Status.FAILING
    other = t.failed("timeout", transient=True, now=6)
    assert other.note is not None
    assert other.note.fields["reason"] == "timeout"
    back = t.succeeded(TWO, ttl=30)
    assert back.note is not None
    assert (back.note.event, back.changed, back.delay) == ("dns_service_recovered", False, 30)
    assert t.failed("servfail", transient=True, now=7).delay == 1


def test_transient_failure_before_any_answer_is_unresolved_and_unsettled() -> None:
    """Failing from the start: nothing to publish, not settled (startup waits for it)."""
    t = tracker()
    step = t.failed("refused", transient=True, now=0)
    assert step.note is not None
    assert step.note.event == "dns_service_unresolved"
    assert (t.service, t.settled, t.status) == (None, False, Status.FAILING)


@pytest.mark.parametrize("policy", [MissingPolicy.KEEP, MissingPolicy.EMPTY])
def test_missing_is_kept_within_the_grace(policy: MissingPolicy) -> None:
    """NXDOMAIN within missing_grace keeps the endpoints whatever on_missing says."""
    t = tracker(on_missing=policy, missing_grace=100, backoff_initial=1, backoff_jitter=0)
    t.succeeded(TWO, ttl=30)
    first = t.failed("nxdomain", transient=False, now=1000)
    again = t.failed("nxdomain", transient=False, now=1050)
    assert first.note is not None
    assert first.note.event == "dns_service_missing"
    assert again.note is None
    assert not first.changed
    assert not again.changed
    assert t.service is not None
    assert t.service.endpoints == TWO
    assert t.status is Status.MISSING


def test_retries_within_the_grace_stop_at_its_end() -> None:
    """The retry delay never overshoots the end of the grace period."""
    t = tracker(missing_grace=10, backoff_initial=8, backoff_max=60, backoff_jitter=0)
    t.succeeded(TWO, ttl=30)
    assert t.failed("nodata", transient=False, now=0).delay == 8
    assert t.failed("nodata", transient=False, now=8).delay == 2


def test_missing_beyond_grace_keeps_by_default_and_says_so() -> None:
    """on_missing=keep: past the grace the endpoints stay, one error note is logged."""
    t = tracker(missing_grace=10)
    t.succeeded(TWO, ttl=30)
    t.failed("nxdomain", transient=False, now=0)
    step = t.failed("nxdomain", transient=False, now=10)
    assert step.note is not None
    assert (step.note.event, step.note.level, step.changed) == (
        "dns_service_missing_kept",
        "error",
        False,
    )
    assert t.service is not None
    assert t.service.endpoints == TWO
    assert t.status is Status.GONE


def test_missing_beyond_grace_empties_only_when_configured() -> None:
    """on_missing=empty: past the grace the service is published with no endpoints."""
    t = tracker(missing_grace=10, on_missing="empty")
    t.succeeded(TWO, ttl=30)
    t.failed("nxdomain", transient=False, now=0)
    step = t.failed("nxdomain", transient=False, now=11)
    assert step.changed
    assert step.note is not None
    assert (step.note.event, step.note.level) == ("dns_service_emptied", "error")
    assert t.service is not None
    assert t.service.endpoints == ()
    assert not t.failed("nxdomain", transient=False, now=20).changed


def test_grace_restarts_after_a_recovery() -> None:
    """A success between two missing episodes restarts the grace clock."""
    t = tracker(missing_grace=10, on_missing="empty")
    t.succeeded(TWO, ttl=30)
    t.failed("nxdomain", transient=False, now=0)
    t.succeeded(TWO, ttl=30)
    assert not t.failed("nxdomain", transient=False, now=20).changed
    assert t.status is Status.MISSING


def test_never_resolved_missing_name_is_settled_but_not_published() -> None:
    """NXDOMAIN from the start: definitive (settled) but nothing is published under keep."""
    t = tracker(missing_grace=0)
    step = t.failed("nxdomain", transient=False, now=0)
    assert (t.settled, t.service, step.changed) == (True, None, False)


def test_transient_failure_while_missing_keeps_the_grace_clock() -> None:
    """A SERVFAIL during a missing episode does not restart the grace period."""
    t = tracker(missing_grace=10, on_missing="empty")
    t.succeeded(TWO, ttl=30)
    t.failed("nxdomain", transient=False, now=0)
    t.failed("servfail", transient=True, now=5)
    assert t.failed("nxdomain", transient=False, now=10).changed
