"""The fake etcd's contract: every case runs on `xdscp.testing.FakeEtcd` and on a real etcd,
through xdscp's own `EtcdClient`, and asserts the same values on both."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fixtures.etcd_backends import EtcdBackend, header_revision, watch_events
from xdscp.errors import EtcdCompactedError, EtcdError
from xdscp.etcd import EtcdClient, KeyValue, WatchEvent, WatchEventType
from xdscp.etcd._proto.etcdserverpb import rpc_pb2

PUT, DELETE = WatchEventType.PUT, WatchEventType.DELETE


async def _range_at(client: EtcdClient, prefix: bytes, revision: int) -> list[tuple[bytes, bytes]]:
    end = bytes([*prefix[:-1], prefix[-1] + 1])
    request = rpc_pb2.RangeRequest(key=prefix, range_end=end, revision=revision)
    response = await client.call("KV", "Range", request, idempotent=True)
    return [(bytes(kv.key), bytes(kv.value)) for kv in response.kvs]


async def _txn(client: EtcdClient, compare: Any, key: bytes = b"/t/x") -> bool:
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"won"))
    request = rpc_pb2.TxnRequest(compare=[compare], success=[put])
    return bool((await client.call("KV", "Txn", request, idempotent=False)).succeeded)


async def _keep_alive_once(client: EtcdClient, lease_id: int) -> int:
    call = client.stub("Lease").LeaseKeepAlive()
    try:
        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        async with asyncio.timeout(10):
            return int((await call.read()).TTL)
    finally:
        call.cancel()


async def test_revisions_after_put_delete_and_txn(etcd_backend: EtcdBackend) -> None:
    """A fresh etcd is at 1; each write request adds one revision, shared by a transaction's
    writes; deleting nothing and a failed transaction add none; versions count puts."""
    async with EtcdClient(etcd_backend.config()) as client:
        assert await header_revision(client) == 1
        assert await client.put(b"/r/a", b"1") == 2
        assert await client.put(b"/r/a", b"2") == 3
        assert await client.get(b"/r/a") == KeyValue(b"/r/a", b"2", 3, 2, 2)
        assert await client.delete(b"/r/none") == 0
        assert await header_revision(client) == 3
        assert await client.put_many([(b"/r/b", b"x"), (b"/r/c", b"y")]) == 4
        assert await client.put_if_absent(b"/r/b", b"z") == (False, 4)
        assert await client.delete(b"/r/", prefix=True) == 3
        assert await header_revision(client) == 5
        await client.put(b"/r/a", b"again")
        assert await client.get(b"/r/a") == KeyValue(b"/r/a", b"again", 6, 6, 1)


async def test_prefix_ranges_paging_and_past_revisions(etcd_backend: EtcdBackend) -> None:
    """A prefix holds only its keys, in order, paged or not; a past revision reads as it was."""
    async with EtcdClient(etcd_backend.config(page_size=1)) as client:
        for key in (b"/p/b", b"/p/a", b"/pa", b"/p0", b"/p/c/d"):
            await client.put(key, key)
        kvs, revision = await client.get_prefix(b"/p/")
        assert [kv.key for kv in kvs] == [b"/p/a", b"/p/b", b"/p/c/d"]
        assert revision == 6
        await client.put(b"/p/a", b"new")
        await client.delete(b"/p/b")
        assert await _range_at(client, b"/p/", 3) == [(b"/p/a", b"/p/a"), (b"/p/b", b"/p/b")]
        assert await _range_at(client, b"/p/", 0) == [(b"/p/a", b"new"), (b"/p/c/d", b"/p/c/d")]
        with pytest.raises(EtcdError, match="future revision"):
            await _range_at(client, b"/p/", 100)


async def test_a_watch_from_a_revision_gets_exactly_what_followed(
    etcd_backend: EtcdBackend,
) -> None:
    """Puts, a transaction, a prefix delete: a watch from the middle gets exactly the events
    from there, in revision order, a transaction's in its order, none outside the prefix."""
    async with EtcdClient(etcd_backend.config()) as client:
        await client.put(b"/w/a", b"1")  # 2
        await client.put(b"/w/b", b"1")  # 3
        await client.put(b"/other", b"1")  # 4
        await client.put_many([(b"/w/c", b"2"), (b"/w/a", b"2")])  # 5
        await client.delete(b"/w/", prefix=True)  # 6
        expected = [
            WatchEvent(PUT, b"/w/b", b"1", 3),
            WatchEvent(PUT, b"/w/c", b"2", 5),
            WatchEvent(PUT, b"/w/a", b"2", 5),
            WatchEvent(DELETE, b"/w/a", b"", 6),
            WatchEvent(DELETE, b"/w/b", b"", 6),
            WatchEvent(DELETE, b"/w/c", b"", 6),
        ]
        assert await watch_events(client, b"/w/", 3, 6) == expected
        watch = asyncio.create_task(watch_events(client, b"/w/", 7, 7))
        await client.put(b"/w/live", b"3")
        assert await watch == [WatchEvent(PUT, b"/w/live", b"3", 7)]


async def test_compacted_revisions_are_refused(etcd_backend: EtcdBackend) -> None:
    """After compacting at R: a watch or read from below R fails as compacted (the watch
    saying R), one from R still works, compacting at R again is refused."""
    async with EtcdClient(etcd_backend.config()) as client:
        for value in (b"1", b"2", b"3", b"4"):
            await client.put(b"/c/k", value)  # revisions 2..5
        await client.delete(b"/c/k")  # 6
        await client.compact(4)
        with pytest.raises(EtcdCompactedError) as caught:
            await watch_events(client, b"/c/", 3, 6)
        assert caught.value.compact_revision == 4
        with pytest.raises(EtcdCompactedError):
            await _range_at(client, b"/c/", 3)
        assert await _range_at(client, b"/c/", 4) == [(b"/c/k", b"3")]
        assert await watch_events(client, b"/c/", 4, 6) == [
            WatchEvent(PUT, b"/c/k", b"3", 4),
            WatchEvent(PUT, b"/c/k", b"4", 5),
            WatchEvent(DELETE, b"/c/k", b"", 6),
        ]
        with pytest.raises(EtcdCompactedError):
            await client.compact(4)


async def test_compaction_drops_a_deletion_at_its_revision(etcd_backend: EtcdBackend) -> None:
    """Compacting at a deletion's revision forgets it: a watch from there starts after it."""
    async with EtcdClient(etcd_backend.config()) as client:
        await client.put(b"/d/k", b"1")  # 2
        await client.delete(b"/d/k")  # 3
        await client.compact(3)
        await client.put(b"/d/j", b"1")  # 4
        assert await watch_events(client, b"/d/", 3, 4) == [WatchEvent(PUT, b"/d/j", b"1", 4)]


async def test_lease_expiry_deletes_its_keys_with_delete_events(
    etcd_backend: EtcdBackend,
) -> None:
    """A lease left to expire takes its keys in one revision, each a DELETE event in key
    order; the lease is then gone (TTL -1, keep-alive answers 0, a put on it is refused)."""
    async with EtcdClient(etcd_backend.config()) as client:
        lease = await client.lease_grant(2)
        await client.put(b"/l/b", b"1", lease=lease)  # 2
        await client.put(b"/l/a", b"1", lease=lease)  # 3
        await client.put(b"/l/keep", b"1")  # 4
        await etcd_backend.age_lease(client, lease, -1)
        assert await watch_events(client, b"/l/", 5, 5) == [
            WatchEvent(DELETE, b"/l/a", b"", 5),
            WatchEvent(DELETE, b"/l/b", b"", 5),
        ]
        kvs, revision = await client.get_prefix(b"/l/")
        assert ([kv.key for kv in kvs], revision) == ([b"/l/keep"], 5)
        assert await client.lease_time_to_live(lease) == -1
        assert await _keep_alive_once(client, lease) == 0
        with pytest.raises(EtcdError, match="requested lease not found"):
            await client.put(b"/l/c", b"1", lease=lease)
        with pytest.raises(EtcdError, match="requested lease not found"):
            await client.lease_revoke(lease)


async def test_revoking_a_lease_deletes_its_keys_at_once(etcd_backend: EtcdBackend) -> None:
    """Revoke: the keys go in one revision; a lease without keys goes without one."""
    async with EtcdClient(etcd_backend.config()) as client:
        lease, empty = await client.lease_grant(60), await client.lease_grant(60)
        await client.put_many([(b"/v/a", b"1"), (b"/v/b", b"1")], lease=lease)  # 2
        await client.lease_revoke(empty)
        assert await header_revision(client) == 2
        await client.lease_revoke(lease)
        assert await header_revision(client) == 3
        assert await client.get_prefix(b"/v/") == ([], 3)


async def test_transaction_compares(etcd_backend: EtcdBackend) -> None:
    """CREATE, MOD, VERSION, VALUE and LEASE compares hold or fail as etcd decides, a
    missing key comparing as zero (and failing any VALUE compare)."""
    cmp, key = rpc_pb2.Compare, b"/t/k"
    async with EtcdClient(etcd_backend.config()) as client:
        lease = await client.lease_grant(60)
        assert await client.put_if_revision(key, b"1", mod_revision=0)  # 2
        assert not await client.put_if_revision(key, b"x", mod_revision=0)
        assert not await client.put_if_revision(key, b"x", mod_revision=1)
        assert await client.put_if_revision(key, b"2", mod_revision=2)  # 3
        assert not await client.put_if_leased(key, b"3", lease=lease)
        await client.put(key, b"3", lease=lease)  # 4
        assert await client.put_if_leased(key, b"3", lease=lease)  # 5
        value = cmp(key=key, target=cmp.VALUE, result=cmp.EQUAL, value=b"3")
        assert await _txn(client, value)  # 6
        absent = cmp(key=b"/t/none", target=cmp.VALUE, result=cmp.NOT_EQUAL, value=b"3")
        assert not await _txn(client, absent)
        version = cmp(key=key, target=cmp.VERSION, result=cmp.GREATER, version=3)
        assert await _txn(client, version)  # 7
        older = cmp(key=key, target=cmp.CREATE, result=cmp.LESS, create_revision=2)
        assert not await _txn(client, older)
        missing = cmp(key=b"/t/none", target=cmp.MOD, result=cmp.LESS, mod_revision=1)
        assert await _txn(client, missing)  # 8
        assert await header_revision(client) == 8


async def test_keep_alive_extends_a_lease(etcd_backend: EtcdBackend) -> None:
    """Kept alive whenever one second is left, a 3 s lease outlives four of those rounds
    (more than its TTL) with its key, each keep-alive answering the full TTL."""
    async with EtcdClient(etcd_backend.config()) as client:
        lease = await client.lease_grant(3)
        await client.put(b"/k/held", b"1", lease=lease)
        for _ in range(4):
            await etcd_backend.age_lease(client, lease, 1)
            assert await _keep_alive_once(client, lease) == 3
        assert await client.lease_time_to_live(lease) >= 1
        assert await client.get(b"/k/held") is not None
