"""The changes every control plane under test sees, and the raw etcd watch beside them.

Service `bench` always holds one endpoint. Change K registers endpoint `eK` (a demo backend
`b{K % P}`, so each change's endpoint is one Envoy does not have) and deregisters `e{K-1}` in
one etcd transaction: one revision, one watch response, no moment without an endpoint. The
key and value are what `xdscp register` writes (`xdscp.registry.registration`).

The writes and the raw watch (the baseline) run in the driver process, `driver.py`.
"""

from __future__ import annotations

from xdscp.etcd import EtcdClient
from xdscp.etcd._proto.etcdserverpb import rpc_pb2
from xdscp.registry.registration import Placement, build_registration, encode

SERVICE = "bench"
PREFIX = f"/xdscp/services/{SERVICE}/"


def endpoint_key(change: int) -> bytes:
    """The etcd key of change `change`'s endpoint."""
    return f"{PREFIX}e{change}".encode()


def backend_of(change: int, backends: int) -> int:
    """Which demo backend change `change` points at."""
    return change % backends


def registration_value(port: int) -> bytes:
    """The native registration value of an endpoint on 127.0.0.1:`port`."""
    _, value = encode(build_registration(SERVICE, "127.0.0.1", port), Placement())
    return value


def change_ops(change: int, port: int) -> list[rpc_pb2.RequestOp]:
    """The transaction of change `change`: register endpoint `change` on `port`, deregister
    `change - 1` (prepared before the write is timed)."""
    put = rpc_pb2.PutRequest(key=endpoint_key(change), value=registration_value(port))
    ops = [rpc_pb2.RequestOp(request_put=put)]
    if change > 0:
        delete = rpc_pb2.DeleteRangeRequest(key=endpoint_key(change - 1))
        ops.append(rpc_pb2.RequestOp(request_delete_range=delete))
    return ops


async def transaction(client: EtcdClient, ops: list[rpc_pb2.RequestOp]) -> int:
    """Apply `ops` in one etcd transaction; returns its revision."""
    response = await client.call("KV", "Txn", rpc_pb2.TxnRequest(success=ops), idempotent=False)
    return int(response.header.revision)


async def reset(client: EtcdClient, port: int) -> None:
    """Remove every endpoint of `bench`, then register change 0."""
    await client.delete(PREFIX.encode(), prefix=True)
    await transaction(client, change_ops(0, port))
