"""Bounded exponential backoff with jitter (I/O-free: the caller sleeps), for every loop that
reconnects or retries: the etcd client, watches and leases, the registration client, the
health election, the plane's source supervisor."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `maximum`, with +-20 % jitter."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._current = initial

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the following one."""
        delay = self._current
        self._current = min(self._current * 2, self._maximum)
        return min(self._maximum, delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        """Start again from `initial` (after a success)."""
        self._current = self._initial
