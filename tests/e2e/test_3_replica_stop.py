"""One xdscp replica stops while requests flow through Envoy: none fails, Envoy moves its
ADS stream to the other replica and keeps receiving changes from it.

The runner stops the replica Envoy is connected to by creating its stop file on the shared
/control volume: the replica's entry script (scripts/compose/replica.sh) then sends SIGTERM to
`xdscp serve`, as `docker stop` would, and the container exits. No Docker socket is needed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.e2e.expect import Expected, applied, connected_replica, envoy_node, set_policy
from tests.e2e.stack import BadStatusError, Client, Stack, reachable, requires_stack
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]


@dataclass
class Load:
    """Requests through Envoy in a thread, one keep-alive connection (a new one after any
    failure); every error or non-200 answer counts as a failed request."""

    stack: Stack
    served: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        client = Client(self.stack.envoy)
        while not self._stop.is_set():
            try:
                client.get()
                self.served += 1
            except OSError as exc:  # BadStatusError, refused, reset, timeout, HTTP protocol errors
                self.failed += 1
                self.errors.append(repr(exc))
                client.close()
                client = Client(self.stack.envoy)
        client.close()

    def start(self) -> None:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop sending and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)


def test_the_request_loop_counts_non_200_as_failed(stack: Stack, started: Expected) -> None:
    """The loop's client raises on an answer that is not 200 from a backend (Envoy's 404 for
    an unknown Host), so a replica stop that broke routing would count as failed requests."""
    client = Client(stack.envoy)
    try:
        with pytest.raises(BadStatusError, match="404"):
            client.get(host="no-such-service")
    finally:
        client.close()


async def _wait(what: str, check: object, within: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < within:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s")


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
        down_s = await _wait(f"{stopped} stops", lambda: not reachable(stack.replicas[stopped]), 30)
        moved_s = await _wait(
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
