"""Host sets of Envoy's own load-balancer tests, built the way Envoy normalizes them.

Each host is identified by its position in the test's `hosts_` vector, so an expectation
`hosts_[4]` in Envoy's test reads `4` here.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdscp.balancer.hash.tables import WeightedKey, normalize_weights

U64_MAX = (1 << 64) - 1


def addr(port: int) -> str:
    """The key Envoy hashes for `makeTestHost(info_, "tcp://127.0.0.1:<port>")`."""
    return f"127.0.0.1:{port}"


def flat(keys: Sequence[str], weights: Sequence[int] | None = None) -> list[WeightedKey[int]]:
    """Hosts without locality weighting: `weight / sum(weights)`, host = position."""
    weights = weights if weights is not None else [1] * len(keys)
    return normalize_weights([(key, weights[i], i) for i, key in enumerate(keys)])


def by_locality(
    keys: Sequence[str],
    localities: Sequence[Sequence[int]],
    locality_weights: Sequence[int],
    weights: Sequence[int] | None = None,
) -> list[WeightedKey[int]]:
    """Envoy's `normalizeLocalityWeights`: localities in order, weight-0 localities dropped."""
    weights = weights if weights is not None else [1] * len(keys)
    total = sum(locality_weights)
    result: list[WeightedKey[int]] = []
    for members, locality_weight in zip(localities, locality_weights, strict=True):
        if locality_weight:
            result += normalize_weights(
                [(keys[i], weights[i], i) for i in members],
                locality_share=locality_weight / total,
            )
    return result


def sweep(count: int) -> list[int]:
    """The request hashes Envoy's histogram tests use: `i * (UINT64_MAX / count)`."""
    step = U64_MAX // count
    return [i * step for i in range(count)]
