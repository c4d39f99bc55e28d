"""One xdscp replica stops while requests flow through Envoy: none fails, Envoy moves its
ADS stream to the other replica and keeps receiving changes from it.

The runner stops the replica Envoy is connected to by creating its stop file on the shared
/control volume: the replica's entry script (scripts/compose/replica.sh) then sends SIGTERM to
`xdscp serve`, as `docker stop` would, and the container exits. No Docker socket is needed.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.harness.expect import Expected, applied, connected_replica, envoy_node, set_policy
from tests.harness.stack import (
    BadStatusError,
    Client,
    Load,
    Stack,
    reachable,
    requires_stack,
    wait_until,
)
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]


def test_the_request_loop_counts_non_200_as_failed(stack: Stack, started: Expected) -> None:
    """The loop's client raises on an answer that is not 200 from a backend (Envoy's 404 for
    an unknown Host), so a replica stop that broke routing would count as failed requests."""
    client = Client(stack.envoy)
    try:
        with pytest.raises(BadStatusError, match="404"):
            client.get(host="no-such-service")
    finally:
        client.close()


async def test_stopping_envoys_replica_fails_no_request(
    stack: Stack, etcd: EtcdClient, started: Expected
) -> None:
    """With a request loop running, the replica holding Envoy's stream is stopped: its ports
    close, Envoy reconnects to the other replica (in sync there), a policy change made
    afterwards reaches Envoy through it, and not one request of the loop failed."""
    stopped = await asyncio.to_thread(connected_replica, stack)
    assert stopped is not None
    (survivor,) = [r for r in stack.replicas if r != stopped]
    load = Load(stack)
    load.start()
    try:
        await asyncio.sleep(1.0)
        (stack.control / f"stop-{stopped}").touch()
        address = stack.replicas[stopped]
        down_s = await wait_until(f"{stopped} stops", lambda: not reachable(address), 30)
        moved_s = await wait_until(
            f"Envoy reconnects to {survivor}",
            lambda: (
                (n := envoy_node(stack, survivor)) is not None
                and all(t["in_sync"] for t in n["types"].values())
            ),
            60,
        )
        expected = await set_policy(stack, etcd, "--lb", "random")
        assert await applied(stack, expected) == survivor
        await asyncio.sleep(1.0)
    finally:
        await load.stop()
    stack.record(
        "replica_stop", stopped=stopped, survivor=survivor, served=load.served,
        failed=load.failed, stop_s=round(down_s, 2), reconnect_s=round(moved_s, 2),
    )  # fmt: skip
    assert load.failed == 0, load.errors[:5]
    assert load.served > 200
