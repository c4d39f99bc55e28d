"""Test helpers for code that embeds or extends xdscp, and for xdscp's own tests.

- `wait_for`: wait (bounded) until a predicate holds; `wait_until`, its blocking form (for
  tests that drive another process), returns the predicate's value.
- `free_port`: a currently free TCP port on 127.0.0.1.
- `Recorder`: a `Publish` callable that records every service set a source publishes;
  `running(source, recorder)`: the source runs for the duration of a block.
- `CheckedStream`, `CheckedDeltaStream`: a SotW or delta stream state driven like a client
  would, checking the protocol's invariants on every response (nonces increase, versions and
  type URLs are right, no name twice, no empty delta response); `cluster_snapshot`: a
  snapshot of clusters and their load assignments to drive them with.
- `FakeEtcd`: an in-process etcd (KV, Watch, Lease over grpc.aio on 127.0.0.1) that
  `EtcdClient` talks to unchanged; with a `ManualClock`, leases expire on `advance()`.

Nothing here starts a process; only `FakeEtcd` (when started) and `free_port`'s probe
open a socket.
"""

from xdscp.procs import free_port
from xdscp.testing.etcd_server import FakeEtcd, ManualClock
from xdscp.testing.publish import Recorder, running, wait_for, wait_until
from xdscp.testing.streams import (
    CheckedDeltaStream,
    CheckedStream,
    check_delta,
    check_sotw,
    cluster_snapshot,
)

__all__ = [
    "CheckedDeltaStream",
    "CheckedStream",
    "FakeEtcd",
    "ManualClock",
    "Recorder",
    "check_delta",
    "check_sotw",
    "cluster_snapshot",
    "free_port",
    "running",
    "wait_for",
    "wait_until",
]
