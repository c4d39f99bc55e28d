"""The health checker's election on a real etcd: one leader, a prompt handover when it stops,
a takeover after its lease when it vanishes; the create-if-absent transaction under it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tests.fixtures.etcd_backends import EtcdBackend
from xdscp.etcd import EtcdClient
from xdscp.health import Election, HealthLayout
from xdscp.testing import wait_for

pytestmark = pytest.mark.etcd
KEY = HealthLayout().leader_key


async def test_put_if_absent_creates_once(etcd_backend: EtcdBackend) -> None:
    """The first writer creates the key; the second is refused and the value is kept."""
    async with EtcdClient(etcd_backend.config()) as client:
        assert (await client.put_if_absent(b"/t/k", b"one"))[0]
        created, _ = await client.put_if_absent(b"/t/k", b"two")
        assert not created
        held = await client.get(b"/t/k")
        assert held is not None
        assert held.value == b"one"


async def test_one_leader_and_a_prompt_handover(etcd_backend: EtcdBackend) -> None:
    """Two candidates: exactly one runs its work and holds the key with its lease. Cancelled,
    it revokes the lease: the other leads without waiting for the TTL (60 s here)."""
    async with EtcdClient(etcd_backend.config()) as client:
        working: list[str] = []

        def work(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
            async def run() -> None:
                working.append(name)
                try:
                    await asyncio.Event().wait()
                finally:
                    working.remove(name)

            return run

        a, b = Election(client, KEY, "a", 60), Election(client, KEY, "b", 60)
        task_a = asyncio.create_task(a.lead(work("a")))
        await wait_for(lambda: working == ["a"])
        task_b = asyncio.create_task(b.lead(work("b")))
        await wait_for(lambda: b.leader == "a")
        assert working == ["a"]
        assert (a.leading, b.leading) == (True, False)
        held = await client.get(KEY)
        assert held is not None
        assert held.value == b"a"
        task_a.cancel()
        await asyncio.wait([task_a])
        await wait_for(lambda: working == ["b"], limit=10)  # far below the 60 s TTL
        assert b.leading
        task_b.cancel()
        await asyncio.wait([task_b])
        assert await client.get(KEY) is None


async def test_deleting_the_key_ends_leadership(etcd_backend: EtcdBackend) -> None:
    """An operator deleting the leader key stops the leader's work; it campaigns again."""
    async with EtcdClient(etcd_backend.config()) as client:
        runs: list[int] = []

        async def work() -> None:
            runs.append(1)
            await asyncio.Event().wait()

        election = Election(client, KEY, "a", 60)
        task = asyncio.create_task(election.lead(work))
        await wait_for(lambda: len(runs) == 1)
        await client.delete(KEY)
        await wait_for(lambda: len(runs) == 2)
        task.cancel()
        await asyncio.wait([task])
