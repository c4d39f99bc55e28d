"""Envoy's bounded-load consistent hashing (`hash_balance_factor`, thread_aware_lb_impl.cc:
ThreadAwareLoadBalancerBase::BoundedLoadHashingLoadBalancer), after arXiv:1608.01350.

A host may hold at most `slots = max(1, ceil(total_slots * weight))` active requests, with
`total_slots = ((overall_active + 1) * factor + 99) // 100` and `weight` its normalized table
weight. When the host the table gives is over that (`active / slots > 1`), the other hosts are
probed in a random order seeded by the request hash (std::mt19937, Fisher-Yates with the
`uniform_int` Envoy writes by hand), the first within its slots wins, else the least overloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

H = TypeVar("H")

_N, _M = 624, 397
_MASK = 0xFFFFFFFF


class MT19937:
    """The C++ `std::mt19937` seeded with one integer (`init_genrand`, seed mod 2**32)."""

    __slots__ = ("_index", "_state")

    def __init__(self, seed: int) -> None:
        state = [seed & _MASK]
        for i in range(1, _N):
            state.append((1812433253 * (state[-1] ^ (state[-1] >> 30)) + i) & _MASK)
        self._state = state
        self._index = _N

    def _twist(self) -> None:
        s = self._state
        for i in range(_N):
            y = (s[i] & 0x80000000) | (s[(i + 1) % _N] & 0x7FFFFFFF)
            s[i] = s[(i + _M) % _N] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self._index = 0

    def __call__(self) -> int:
        """The next 32-bit output."""
        if self._index >= _N:
            self._twist()
        y = self._state[self._index]
        self._index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        return y ^ (y >> 18)


def _uniform_int(random: MT19937, k: int) -> int:
    """Envoy's `uniform_int`: [0, k) by division, rejecting the top remainder."""
    x = k
    while x >= k:
        x = random() // ((_MASK + 1) // k)
    return x


def overload_factor(active: int, overall_active: int, weight: float, factor: int) -> float:
    """`active / slots` for one host (> 1: over its bound)."""
    total_slots = ((overall_active + 1) * factor + 99) // 100
    slots = max(math.ceil(total_slots * weight), 1)
    return active / slots


def bounded_choice(
    chosen: H,
    hash_value: int,
    hosts: Sequence[tuple[H, float]],
    *,
    active: Callable[[H], int],
    overall_active: int,
    factor: int,
) -> H:
    """The host bounded-load hashing sends request `hash_value` to, given the table's pick
    `chosen`, the table's (host, normalized weight) list and each host's active requests."""
    weights = dict(hosts)
    best, best_factor = (
        chosen,
        overload_factor(active(chosen), overall_active, weights[chosen], factor),
    )
    if best_factor <= 1.0:
        return chosen
    order = list(range(len(hosts)))
    random = MT19937(hash_value)
    for i in range(len(hosts)):
        j = _uniform_int(random, len(hosts) - i)
        order[i], order[i + j] = order[i + j], order[i]
        host, weight = hosts[order[i]]
        if host is chosen:
            continue
        current = overload_factor(active(host), overall_active, weight, factor)
        if current <= 1.0:
            return host
        if best_factor > current:
            best, best_factor = host, current
    return best
