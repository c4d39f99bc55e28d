"""The retry delays every reconnecting loop uses (etcd client, watches, leases, the
registration client, the health election, the plane's source supervisor)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xdscp.retry import Backoff


def test_backoff_doubles_up_to_the_bound_and_resets() -> None:
    """Delays grow exponentially within +-20 % jitter, never beyond the maximum."""
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.08 <= delays[0] <= 0.12
    assert 0.16 <= delays[1] <= 0.24
    assert all(d <= 1.0 for d in delays)
    assert delays[-1] >= 0.8
    backoff.reset()
    assert backoff.next_delay() <= 0.12


@given(
    initial=st.floats(0.001, 10.0),
    factor=st.floats(1.0, 100.0),
    attempts=st.integers(1, 40),
)
def test_no_delay_exceeds_the_maximum_or_falls_under_the_jittered_initial(
    initial: float, factor: float, attempts: int
) -> None:
    maximum = initial * factor
    backoff = Backoff(initial, maximum)
    delays = [backoff.next_delay() for _ in range(attempts)]
    assert all(initial * 0.8 <= d <= maximum for d in delays)
