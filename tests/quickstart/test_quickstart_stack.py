"""The quick-start stack (deploy/quickstart) as a user meets it, through the ports it
publishes on 127.0.0.1: HTTP through Envoy, serve's dashboard and /metrics.

`make e2e-compose` brings the stack up (without the observability profile) and runs this
module from a container on the host's network (scripts/e2e-compose.sh: run_quickstart). The
two backends registered themselves with weights 1 (a) and 3 (b); modules and tests run in
file order, so the first test sees the stack as `up` left it.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.harness.expect import Expected, applied, set_policy
from tests.harness.stack import Stack, count_backends, get, wait_until
from tests.harness.stats import reference, shares
from xdscp.balancer import sequential_picks
from xdscp.etcd import EtcdClient

ENABLED = os.environ.get("XDSCP_QUICKSTART", "") not in {"", "0"}
pytestmark = [
    pytest.mark.compose,
    pytest.mark.skipif(
        not ENABLED,
        reason="the quick-start stack's test: `make e2e-compose` runs it against the stack",
    ),
]
N = 400
PICKS = 20_000


def _predicted(expected: Expected) -> dict[str, float]:
    ref = reference(expected.cluster, expected.load_assignment)
    return shares(sequential_picks(ref, PICKS, expected.name_of))


async def _measure(stack: Stack, expected: Expected) -> dict[str, float]:
    """N requests over one connection through Envoy's published port: each backend's count
    is within 1.5 requests of the reference prediction; the predicted shares."""
    observed = await asyncio.to_thread(count_backends, stack, N)
    predicted = _predicted(expected)
    stack.record("quickstart_split", observed=dict(observed), predicted=predicted)
    assert sum(observed.values()) == N
    assert all(abs(observed[k] - N * p) <= 1.5 for k, p in predicted.items()), observed
    return predicted


async def test_backends_registered_with_their_weights(started: Expected) -> None:
    """Backend a registered web with weight 1, b with weight 3, each its own address."""
    assert started.registration("a").weight == 1
    assert started.registration("b").weight == 3
    assert started.registration("a").host != started.registration("b").host


async def test_default_round_robin_alternates(stack: Stack, started: Expected) -> None:
    """Out of the box the policy is round robin, which ignores weights: half each."""
    predicted = await _measure(stack, started)
    assert predicted == pytest.approx({"a": 0.5, "b": 0.5})


async def test_weighted_round_robin_follows_the_weights(stack: Stack, etcd: EtcdClient) -> None:
    """After `xdscp policy set web --lb weighted_round_robin` (the quick start's next step),
    once Envoy holds the new cluster: a quarter to a, three quarters to b."""
    expected = await set_policy(stack, etcd, "--lb", "weighted_round_robin")
    await applied(stack, expected)
    predicted = await _measure(stack, expected)
    assert predicted == pytest.approx({"a": 0.25, "b": 0.75})


async def test_dashboard_and_metrics_answer_on_loopback(stack: Stack) -> None:
    """serve's admin port, published on 127.0.0.1: the dashboard page, and /metrics (what
    the stack's Prometheus scrapes) counting Envoy's open stream."""
    (admin,) = stack.replicas.values()
    status, page = await asyncio.to_thread(get, admin, "/")
    assert status == 200
    assert b"<html" in page.lower()

    def envoy_counted() -> bool:
        status, metrics = get(admin, "/metrics")
        return status == 200 and b'xdscp_connected_streams{client="envoy"} 1.0' in metrics

    await wait_until("/metrics counts Envoy's stream", envoy_counted, within=30.0)
