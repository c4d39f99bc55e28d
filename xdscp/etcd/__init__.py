"""xdscp's own etcd v3 client (grpc.aio on a generated subset of etcd's API)."""

from xdscp.etcd.client import EtcdClient
from xdscp.etcd.config import DEFAULT_ENDPOINT, EtcdConfig, EtcdEndpoint, parse_endpoint
from xdscp.etcd.lease import keep_alive
from xdscp.etcd.mirror import PrefixMirror
from xdscp.etcd.rpc_errors import LeaseExpiredError
from xdscp.etcd.types import KeyValue, WatchEvent, WatchEventType, prefix_range_end
from xdscp.etcd.watch import PrefixWatcher, WatchBatch, watch_prefix

__all__ = [
    "DEFAULT_ENDPOINT",
    "EtcdClient",
    "EtcdConfig",
    "EtcdEndpoint",
    "KeyValue",
    "LeaseExpiredError",
    "PrefixMirror",
    "PrefixWatcher",
    "WatchBatch",
    "WatchEvent",
    "WatchEventType",
    "keep_alive",
    "parse_endpoint",
    "prefix_range_end",
    "watch_prefix",
]
