"""The fake etcd's KV requests on the wire: etcd's protobuf messages in, the store's calls,
etcd's protobuf messages out (no I/O; `xdscp.testing.etcd_server` moves the messages).

Transactions follow etcd's `applyCompare` and `applyTxn`: a compare on a missing key sees
zeroes (and fails for VALUE); a compare over a range holds when every key satisfies it; the
branch's operations run in order, reading the writes before them, all at one revision.
Requests the fake does not implement (nested transactions, sorting, filters) are refused
with UNIMPLEMENTED rather than answered wrongly.
"""

from __future__ import annotations

from typing import Any

from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.etcd._proto.mvccpb import kv_pb2
from xdscp.testing.etcd_store import Event, Kv, Store, StoreError, StoreErrorKind, in_range

CLUSTER_ID = 0x1D_C0FF_EE00_0001
MEMBER_ID = 0xFA_CE00_0000_0001


def header(store: Store) -> Any:
    """A response header at the store's revision."""
    return rpc_pb2.ResponseHeader(
        cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=store.revision, raft_term=2
    )


def kv_pb(kv: Kv) -> Any:
    """An `mvccpb.KeyValue`."""
    return kv_pb2.KeyValue(
        key=kv.key, value=kv.value, create_revision=kv.create_revision,
        mod_revision=kv.mod_revision, version=kv.version, lease=kv.lease,
    )  # fmt: skip


def event_pb(event: Event) -> Any:
    """An `mvccpb.Event`."""
    kind = kv_pb2.Event.DELETE if event.deleted else kv_pb2.Event.PUT
    return kv_pb2.Event(type=kind, kv=kv_pb(event.kv))


def _unsupported(condition: bool) -> None:
    if condition:
        raise StoreError(StoreErrorKind.UNSUPPORTED)


def range_(store: Store, request: Any) -> Any:
    """A RangeResponse (without header) for a RangeRequest, at its revision."""
    _unsupported(
        bool(request.sort_order or request.sort_target or request.min_mod_revision)
        or bool(request.max_mod_revision or request.min_create_revision)
        or bool(request.max_create_revision)
    )
    kvs = store.range(bytes(request.key), bytes(request.range_end), int(request.revision))
    shown = kvs[: request.limit] if request.limit else kvs
    if request.count_only:
        shown = []
    elif request.keys_only:
        shown = [Kv(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                 for kv in shown]  # fmt: skip
    return rpc_pb2.RangeResponse(
        kvs=[kv_pb(kv) for kv in shown], count=len(kvs), more=len(shown) < len(kvs)
    )


def put(store: Store, request: Any) -> Any:
    """A PutResponse (without header), the write applied to the current request."""
    _unsupported(bool(request.ignore_value or request.ignore_lease))
    key = bytes(request.key)
    before = store.range(key) if request.prev_kv and key else []
    store.put(key, bytes(request.value), int(request.lease))
    response = rpc_pb2.PutResponse()
    if before:
        response.prev_kv.CopyFrom(kv_pb(before[0]))
    return response


def delete_range(store: Store, request: Any) -> Any:
    """A DeleteRangeResponse (without header), applied to the current request."""
    gone = store.delete_range(bytes(request.key), bytes(request.range_end))
    prev = [kv_pb(kv) for kv in gone] if request.prev_kv else []
    return rpc_pb2.DeleteRangeResponse(deleted=len(gone), prev_kvs=prev)


def _target(compare: Any, kv: Kv | None) -> tuple[Any, Any]:
    """(the key's value of the compared field, the value compared to)."""
    field = compare.WhichOneof("target_union")
    if compare.target == rpc_pb2.Compare.VALUE:
        return (kv.value if kv else b""), bytes(compare.value)
    names = {
        rpc_pb2.Compare.VERSION: "version",
        rpc_pb2.Compare.CREATE: "create_revision",
        rpc_pb2.Compare.MOD: "mod_revision",
        rpc_pb2.Compare.LEASE: "lease",
    }
    name = names[compare.target]
    expected = getattr(compare, field) if field == name else 0
    return (getattr(kv, name) if kv else 0), int(expected)


def _holds(compare: Any, kv: Kv | None) -> bool:
    actual, expected = _target(compare, kv)
    result = compare.result
    if result == rpc_pb2.Compare.EQUAL:
        return bool(actual == expected)
    if result == rpc_pb2.Compare.NOT_EQUAL:
        return bool(actual != expected)
    if result == rpc_pb2.Compare.GREATER:
        return bool(actual > expected)
    return bool(actual < expected)


def compare_holds(store: Store, compare: Any) -> bool:
    """One transaction compare, as etcd evaluates it."""
    kvs = store.range(bytes(compare.key), bytes(compare.range_end))
    if not kvs:
        return compare.target != rpc_pb2.Compare.VALUE and _holds(compare, None)
    return all(_holds(compare, kv) for kv in kvs)


def _check_ops(store: Store, ops: Any) -> None:
    """Refuse a branch before any of it is applied, as etcd does: an empty key, a lease
    that does not exist, a key written twice, a nested transaction."""
    puts: list[bytes] = []
    deletes: list[tuple[bytes, bytes]] = []
    for op in ops:
        kind = op.WhichOneof("request")
        _unsupported(kind == "request_txn")
        if kind == "request_put":
            key, lease = bytes(op.request_put.key), int(op.request_put.lease)
            if not key:
                raise StoreError(StoreErrorKind.EMPTY_KEY)
            if lease and lease not in store.leases:
                raise StoreError(StoreErrorKind.LEASE_NOT_FOUND)
            puts.append(key)
        elif kind == "request_delete_range":
            request = op.request_delete_range
            deletes.append((bytes(request.key), bytes(request.range_end)))
    clash = any(in_range(key, start, end) for key in puts for start, end in deletes)
    if len(set(puts)) < len(puts) or clash:
        raise StoreError(StoreErrorKind.DUPLICATE_KEY)


def txn(store: Store, request: Any) -> Any:
    """A TxnResponse (without header), the chosen branch applied to the current request."""
    succeeded = all(compare_holds(store, c) for c in request.compare)
    ops = request.success if succeeded else request.failure
    _check_ops(store, ops)
    responses = []
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            responses.append(rpc_pb2.ResponseOp(response_range=range_(store, op.request_range)))
        elif kind == "request_put":
            responses.append(rpc_pb2.ResponseOp(response_put=put(store, op.request_put)))
        elif kind == "request_delete_range":
            deleted = delete_range(store, op.request_delete_range)
            responses.append(rpc_pb2.ResponseOp(response_delete_range=deleted))
    return rpc_pb2.TxnResponse(succeeded=succeeded, responses=responses)
