"""Predictions from the reference balancer and the statistical bands Envoy's counts must meet.

Tolerance: Envoy's count for a host over `n` requests is Binomial(n, p). When `p` itself is
estimated from `m` seeded reference picks, the difference `envoy - n * p_hat` has variance
`n p (1 - p) (1 + n / m)`. A count passes when it lies within `SIGMAS` standard deviations:
at 5 sigma a correct balancer fails one host check in ~1.7 million, while every band is also
checked to exclude the count a plausible wrong behaviour would give (`alternative`), so each
test can fail.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from xdscp.balancer import Balancer, build_balancer

SIGMAS = 5.0
SEED = 20261125

# Three backends weighted 1:2:7 split by each strategy, and the plausible wrong split a
# measurement must be far from: the weights ignored, or honoured where they should not be.
EQUAL = {"b0": 1 / 3, "b1": 1 / 3, "b2": 1 / 3}
WEIGHTED = {"b0": 0.1, "b1": 0.2, "b2": 0.7}
SPLIT_CASES = [
    ("round_robin", WEIGHTED),
    ("weighted_round_robin", EQUAL),
    ("random", WEIGHTED),
    ("weighted_random", EQUAL),
    ("least_request", EQUAL),
]


def reference(cluster: object, cla: object, *, seed: int = SEED) -> Balancer:
    """The reference balancer for the protos, with a fixed seed."""
    return build_balancer(cluster, cla, rng=random.Random(seed))


def sigma(n: int, p: float, reference_picks: int | None = None) -> float:
    """Standard deviation of `count - n * p` (see the module docstring)."""
    inflation = 1.0 + (n / reference_picks if reference_picks else 0.0)
    return math.sqrt(n * p * (1.0 - p) * inflation)


def assert_shares(
    observed: Mapping[str, int],
    predicted: Mapping[str, float],
    n: int,
    *,
    reference_picks: int | None = None,
    alternative: Mapping[str, float] | None = None,
) -> None:
    """Each host's count is within SIGMAS sigma of `n * predicted`; nothing else got picks.

    With `alternative` (the shares of a plausible wrong behaviour), at least one host's band
    must exclude the alternative's count: proof that the check can fail.
    """
    assert sum(observed.values()) == n, observed
    picked = {k for k, v in observed.items() if v}
    assert picked <= {k for k, p in predicted.items() if p > 0}, (observed, predicted)
    separable = False
    print(f"n={n}", {k: f"{observed.get(k, 0)}/{n * p:.1f}" for k, p in sorted(predicted.items())})
    for name, p in predicted.items():
        band = SIGMAS * sigma(n, p, reference_picks)
        got = observed.get(name, 0)
        assert abs(got - n * p) <= band + 1e-9, (name, got, n * p, band, dict(observed))
        if alternative is not None and abs(alternative.get(name, 0.0) - p) * n > 2 * band:
            separable = True
    if alternative is not None:
        assert separable, f"bands too wide to tell {dict(predicted)} from {dict(alternative)}"


def shares(counted: Mapping[str, int]) -> dict[str, float]:
    """Counts as fractions of their total."""
    total = sum(counted.values())
    return {k: v / total for k, v in counted.items()}
