"""Traffic split per strategy, measured through the stack's Envoy, against the reference
balancer's prediction for the resources xdscp serves (modules run in file order: 1 to 4)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.harness.expect import Expected, applied, set_policy
from tests.harness.stack import Stack, count_backends, requires_stack
from tests.harness.stats import (
    SPLIT_CASES,
    assert_shares,
    reference,
    shares,
)
from xdscp.balancer import sequential_picks
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]
N = 1000
PICKS = 20_000


@pytest.mark.parametrize(("lb", "wrong"), SPLIT_CASES)
async def test_split_through_envoy_matches_the_reference(
    stack: Stack, etcd: EtcdClient, started: Expected, lb: str, wrong: dict[str, float]
) -> None:
    """`xdscp policy set web --lb LB`; once Envoy holds the new cluster, 1000 requests over
    one connection split over the self-registered backends (weights 1:2:7) within 5 sigma of
    the reference prediction (round robin: within 1.5 requests), and far from `wrong`."""
    expected = await set_policy(stack, etcd, "--lb", lb)
    replica = await applied(stack, expected)
    observed = await asyncio.to_thread(count_backends, stack, N)
    ref = reference(expected.cluster, expected.load_assignment)
    predicted = shares(sequential_picks(ref, PICKS, expected.name_of))
    stack.record(
        "split", lb=lb, replica=replica, observed=dict(observed),
        predicted={k: round(N * p, 1) for k, p in predicted.items()},
    )  # fmt: skip
    assert_shares(observed, predicted, N, reference_picks=PICKS, alternative=wrong)
    if lb in {"round_robin", "weighted_round_robin"}:
        assert all(abs(observed[k] - N * p) <= 1.5 for k, p in predicted.items()), observed


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
async def test_header_hash_sticks_where_the_reference_predicts(
    stack: Stack, etcd: EtcdClient, started: Expected, lb: str
) -> None:
    """Hashing on header x-user: each of 50 users lands on the predicted backend on all 5 of
    its requests, and the users spread over more than one backend."""
    expected = await set_policy(stack, etcd, "--lb", lb, "--hash-on", "header:x-user")
    await applied(stack, expected)
    ref = reference(expected.cluster, expected.load_assignment)
    landed: Counter[str] = Counter()
    for i in range(50):
        user = f"user-{i}"
        seen = await asyncio.to_thread(count_backends, stack, 5, {"x-user": user})
        want = expected.name_of(ref.choose(ref.request_hash(headers={"x-user": user})))
        assert seen == {want: 5}, (user, seen, want)
        landed[want] += 1
    stack.record("hash", lb=lb, users_per_backend=dict(landed))
    assert len(landed) > 1, landed
