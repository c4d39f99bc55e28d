"""The fake etcd against a real one on random sequences of what xdscp does: puts (some on a
lease), deletes, prefix deletes, create-if-absent and compare-and-swap transactions, prefix
listings, reads at past revisions, compactions, a lease revoked; then a watch over it all.
Every answer (or error) must be the same, revisions counted from the sequence's start."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.etcd_backends import header_revision, watch_events
from xdscp.errors import EtcdError
from xdscp.etcd import EtcdClient, KeyValue, prefix_range_end
from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.testing import FakeEtcd

pytestmark = pytest.mark.etcd

KEYS = st.sampled_from([b"a", b"b", b"c/1", b"c/2"])
VALUES = st.sampled_from([b"1", b"2"])
OPS = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES, st.booleans()),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("delete_prefix"), st.sampled_from([b"", b"c/"])),
    st.tuples(st.just("put_if_absent"), KEYS, VALUES),
    st.tuples(st.just("put_if_revision"), KEYS, VALUES, st.sampled_from(["now", "stale", "0"])),
    st.tuples(st.just("list"), st.sampled_from([b"", b"c/"])),
    st.tuples(st.just("range_at"), st.integers(0, 8)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("revoke")),
)
_sequences = itertools.count()


class Run:
    """One backend's run of a sequence: its client, prefix, starting revision and lease."""

    def __init__(self, client: EtcdClient, prefix: bytes, base: int, lease: int) -> None:
        self.client, self.prefix, self.base, self.lease = client, prefix, base, lease
        self.watch_from = base + 1  # after a compaction at R: R (the oldest watchable)

    def kv(self, kv: KeyValue) -> tuple[Any, ...]:
        """A key-value with revisions counted from the start, the lease named."""
        lease = "L" if kv.lease == self.lease else kv.lease
        return (kv.key.removeprefix(self.prefix), kv.value, kv.mod_revision - self.base,
                kv.create_revision - self.base, kv.version, lease)  # fmt: skip

    async def mod_revision(self, key: bytes) -> int:
        kv = await self.client.get(key)
        return 0 if kv is None else kv.mod_revision

    async def op(self, op: tuple[Any, ...]) -> object:
        """Apply one operation; its answer, comparable across backends."""
        key = self.prefix + op[1] if len(op) > 1 and isinstance(op[1], bytes) else b""
        if op[0] in {"put", "delete", "delete_prefix"}:
            return await self._write_op(op, key)
        if op[0] in {"put_if_absent", "put_if_revision", "list"}:
            return await self._checked_op(op, key)
        return await self._history_op(op)

    async def _write_op(self, op: tuple[Any, ...], key: bytes) -> object:
        if op[0] == "put":
            lease = self.lease if op[3] else 0
            return await self.client.put(key, op[2], lease=lease) - self.base
        return await self.client.delete(key, prefix=op[0] == "delete_prefix")

    async def _checked_op(self, op: tuple[Any, ...], key: bytes) -> object:
        client = self.client
        if op[0] == "put_if_absent":
            created, revision = await client.put_if_absent(key, op[2])
            return created, revision - self.base
        if op[0] == "put_if_revision":
            current = await self.mod_revision(key)
            wanted = {"now": current, "stale": max(0, current - 1), "0": 0}[op[3]]
            return await client.put_if_revision(key, op[2], mod_revision=wanted)
        kvs, revision = await client.get_prefix(key)
        return [self.kv(kv) for kv in kvs], revision - self.base

    async def _history_op(self, op: tuple[Any, ...]) -> object:
        client, now = self.client, await header_revision(self.client)
        if op[0] == "range_at":
            revision = min(self.base + op[1], now)
            request = rpc_pb2.RangeRequest(
                key=self.prefix, range_end=prefix_range_end(self.prefix), revision=revision
            )
            response = await client.call("KV", "Range", request, idempotent=True)
            return [(bytes(kv.key), bytes(kv.value)) for kv in response.kvs]
        if op[0] == "compact":
            await client.compact(now)
            self.watch_from = max(self.watch_from, now)
            return now - self.base
        await client.lease_revoke(self.lease)
        return await header_revision(client) - self.base

    async def watched(self) -> object:
        """Every event under the prefix since the start, or since the last compaction, up
        to a last write that marks the end."""
        end = await self.client.put(self.prefix + b"~end", b"")
        events = await watch_events(self.client, self.prefix, self.watch_from, end)
        return [(e.kind, e.key, e.value, e.mod_revision - self.base) for e in events]


async def _answer(call: Callable[[], Awaitable[object]]) -> object:
    try:
        return await call()
    except EtcdError as exc:
        return (type(exc).__name__, str(exc))


async def _run(config: Any, prefix: bytes, ops: list[tuple[Any, ...]]) -> list[object]:
    async with EtcdClient(config) as client:
        lease = await client.lease_grant(600)
        run = Run(client, prefix, await header_revision(client), lease)
        answers = [await _answer(lambda op=op: run.op(op)) for op in ops]  # type: ignore[misc]
        answers.append(await _answer(run.watched))
        return answers


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=14))
async def test_the_fake_answers_as_etcd_does(
    etcd_server: EtcdServer, fake_etcd: FakeEtcd, ops: list[tuple[Any, ...]]
) -> None:
    """The same sequence on both, on a fresh prefix: the same answers, in the same order."""
    prefix = f"/seq/{next(_sequences)}/".encode()
    real = await _run(etcd_server.config(), prefix, ops)
    fake = await _run(fake_etcd.config(), prefix, ops)
    assert fake == real
