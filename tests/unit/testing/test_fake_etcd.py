"""The fake etcd alone: its I/O-free store (a replay property), its clocks, what it refuses.
(Its agreement with a real etcd: tests/integration/etcd/test_fake_contract*.py.)"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.errors import EtcdError
from xdscp.etcd import EtcdClient, WatchEventType, watch_prefix
from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.testing import FakeEtcd, ManualClock
from xdscp.testing.etcd_store import Store, StoreError, StoreErrorKind

KEYS = st.sampled_from([b"a", b"b", b"c"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS, st.binary(max_size=2)),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("compact"), st.integers(0, 3)),
    ),
    max_size=20,
)


def _apply(store: Store, op: tuple[object, ...]) -> None:
    if op[0] == "put":
        store.put(op[1], op[2])  # type: ignore[arg-type]
        store.commit()
    elif op[0] == "delete":
        store.delete_range(op[1])  # type: ignore[arg-type]
        store.commit()
    elif store.revision - int(op[1]) > store.compact_revision:  # type: ignore[call-overload]
        store.compact(store.revision - int(op[1]))  # type: ignore[call-overload]


@settings(max_examples=200)
@given(ops=OPS)
def test_a_past_read_is_the_replay_of_the_events_up_to_it(ops: list[tuple[object, ...]]) -> None:
    """Whatever the writes and compactions, reading at any revision still readable gives the
    keys that replaying every event up to it gives (the events seen by a watch from 1)."""
    store = Store()
    watcher = store.watch(b"\0", b"\0", 1)
    for op in ops:
        _apply(store, op)
    events = watcher.take()
    assert [e.kv.mod_revision for e in events] == sorted(e.kv.mod_revision for e in events)
    for revision in range(max(1, store.compact_revision), store.revision + 1):
        state: dict[bytes, bytes] = {}
        for event in (e for e in events if e.kv.mod_revision <= revision):
            if event.deleted:
                del state[event.kv.key]
            else:
                state[event.kv.key] = event.kv.value
        assert {kv.key: kv.value for kv in store.range(b"\0", b"\0", revision)} == state
    with pytest.raises(StoreError) as caught:
        store.range(b"a", revision=store.revision + 1)
    assert caught.value.kind is StoreErrorKind.FUTURE_REVISION


def test_leases_run_on_the_callers_clock() -> None:
    """A lease expires when `now` reaches its deadline, keep-alive restarts the TTL, and the
    keys of an expired lease go in one revision."""
    store = Store()
    lease = store.grant(10, now=0.0)
    store.put(b"k1", b"v", lease.id)
    store.put(b"k2", b"v", lease.id)
    assert store.commit() == 2
    assert store.keep_alive(lease.id, now=9.0) == 10
    assert store.expire(now=18.9) == []
    assert store.time_to_live(lease.id, now=18.9) == (0, 10, [b"k1", b"k2"])
    assert store.expire(now=19.0) == [lease.id]
    assert (store.revision, store.range(b"k", b"l")) == (3, [])
    assert store.time_to_live(lease.id, now=19.0) == (-1, 0, [])
    assert store.keep_alive(lease.id, now=19.0) == 0


async def test_a_manual_clock_expires_leases_only_when_advanced() -> None:
    """Over gRPC: the lease lives as long as the clock stands still, and `advance` past its
    TTL deletes its key, which a watcher sees at once."""
    async with FakeEtcd(clock=ManualClock()) as etcd, EtcdClient(etcd.config()) as client:
        lease = await client.lease_grant(5)
        await client.put(b"/m/k", b"v", lease=lease)
        etcd.advance(4.9)
        assert await client.lease_time_to_live(lease) == 0
        watch = watch_prefix(client, b"/m/", 3)
        assert (await anext(watch)).created
        etcd.advance(0.1)
        batch = await anext(watch)
        await watch.aclose()
        assert [(e.kind, e.key, e.mod_revision) for e in batch.events] == [
            (WatchEventType.DELETE, b"/m/k", 3)
        ]
        with pytest.raises(TypeError):
            FakeEtcd().advance(1)


async def test_the_default_clock_expires_leases_by_itself() -> None:
    """Without a manual clock, a lease runs out on its own, as on a real etcd: the watcher
    gets the DELETE of its key."""
    async with FakeEtcd() as etcd, EtcdClient(etcd.config()) as client:
        lease = await client.lease_grant(1)
        await client.put(b"/e/k", b"v", lease=lease)
        watch = watch_prefix(client, b"/e/", 3)
        async with asyncio.timeout(20):
            batches = [await anext(watch), await anext(watch)]
        await watch.aclose()
        assert [(e.kind, e.key) for e in batches[1].events] == [(WatchEventType.DELETE, b"/e/k")]
        assert await client.lease_time_to_live(lease) == -1


async def test_what_the_fake_does_not_do_is_refused_not_answered_wrongly() -> None:
    """Sorting, nested transactions, watch filters: UNIMPLEMENTED or a canceled watch; an
    empty key as etcd refuses it; a watch cancelled by id is answered `canceled`."""
    async with FakeEtcd() as etcd, EtcdClient(etcd.config()) as client:
        sort = rpc_pb2.RangeRequest(key=b"a", sort_order=rpc_pb2.RangeRequest.DESCEND)
        with pytest.raises(EtcdError, match="UNIMPLEMENTED"):
            await client.call("KV", "Range", sort, idempotent=True)
        nested = rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest())
        with pytest.raises(EtcdError, match="UNIMPLEMENTED"):
            await client.call("KV", "Txn", rpc_pb2.TxnRequest(success=[nested]), idempotent=True)
        with pytest.raises(EtcdError, match="key is not provided"):
            await client.put(b"", b"v")
        call = client.stub("Watch").Watch()
        filtered = rpc_pb2.WatchCreateRequest(key=b"a", filters=[rpc_pb2.WatchCreateRequest.NOPUT])
        await call.write(rpc_pb2.WatchRequest(create_request=filtered))
        assert (await call.read()).canceled
        await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"a")))
        created = await call.read()
        assert created.created
        cancel = rpc_pb2.WatchCancelRequest(watch_id=created.watch_id)
        await call.write(rpc_pb2.WatchRequest(cancel_request=cancel))
        answer = await call.read()
        assert (answer.canceled, answer.watch_id) == (True, created.watch_id)
        call.cancel()
        assert grpc.StatusCode.UNIMPLEMENTED.name == StoreErrorKind.UNSUPPORTED.value[0]
