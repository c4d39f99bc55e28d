"""CSDS fetch latency over N connected nodes, and the memory of a full NACK history.

    .venv/bin/python -m bench.csds_fetch [NODES ...]    (default: 10 100 1000)

Each node is a state-of-the-world stream holding 10 clusters and 10 CLAs, all ACKed. The
fetch is `client_status` (the ClientStatusResponse built from the status board, serialized),
without gRPC; the history is NACK_HISTORY NACKs with errors at the truncation limit.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections import deque

from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server import NACK_HISTORY, StatusBoard
from xdscp.server.csds import client_status
from xdscp.server.nodes import NodeInfo
from xdscp.server.protocol import Request, StreamState
from xdscp.server.status import ERROR_HEAD, ERROR_TAIL, Nack, StreamRecord, truncate

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT
NAMES = [f"svc-{i}" for i in range(10)]


def _any(type_url: str, name: str) -> bytes:
    return any_pb2.Any(type_url=type_url, value=name.encode() * 20).SerializeToString()


def board(nodes: int) -> StatusBoard:
    snapshot = Snapshot.of([Resource(t, n, _any(t, n)) for t in (C, E) for n in NAMES])
    out = StatusBoard()
    for i in range(nodes):
        state = StreamState(snapshot=snapshot)
        record = StreamRecord(NodeInfo(f"node-{i}"), "ADS", "envoy", snapshot)
        for type_url, names in ((C, ()), (E, tuple(NAMES))):
            handled = state.on_request(Request(type_url, resource_names=names))
            record.on_answer(handled.answer, time.time())
            (response,) = handled.responses
            record.on_push(response, time.time())
            ack = Request(type_url, response.version_info, response.nonce, names)
            record.on_answer(state.on_request(ack).answer, time.time())
        out.add(record)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nodes", type=int, nargs="*", default=[10, 100, 1000], help="node counts")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.nodes):
        parser.error("node counts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Fetch times per node count, then the memory of a full NACK history."""
    for nodes in parse_args(argv).nodes:
        statuses = board(nodes)
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            data = client_status(statuses, csds_pb2.ClientStatusRequest()).SerializeToString()
            runs.append(time.perf_counter() - started)
        print(
            f"{nodes} nodes x 20 resources: fetch {min(runs) * 1000:.1f} ms (best of 5),"
            f" {len(data) / 1e6:.2f} MB"
        )
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    history: deque[Nack] = deque(maxlen=NACK_HISTORY)
    for i in range(NACK_HISTORY * 2):
        error = truncate(f"error {i} " + "x" * 5000)
        assert len(error) < ERROR_HEAD + ERROR_TAIL + 64
        history.append(Nack(time.time(), str(C), f"{i:016x}", str(i), error))
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    print(
        f"full NACK history ({NACK_HISTORY} errors at the limit): {grown / 1024:.1f} KiB per stream"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
