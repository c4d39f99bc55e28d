"""Protocol layer: N stream states and their status records, driven by plain calls.

    .venv/bin/python bench/protocol_layer.py --n 1000 [--delta] [--changes 30]
    .venv/bin/python bench/protocol_layer.py --n 1000 --against DIR --repeat 5

No event loop, no encoding, no client: each stream's sans-I/O state (`StreamState`, or
`DeltaStreamState` with `--delta`) takes Envoy's requests (CDS wildcard, EDS for the 50
clusters, every response ACKed) and its `StreamRecord` is told what the grpc.aio shell
tells it. It measures what the status board costs beside the protocol: CPU time
(`time.process_time`) of the initial sync of N streams (50 Clusters, 50 CLAs each) and the
min / median of `--changes` single-CLA changes (pushed to and ACKed by every stream). A full
collection precedes the initial sync: without it, whether the first gen-2 collection of the
process falls inside that span depends on how much each build's imports allocated.

The record is fed as the build under test feeds it: told events (the snapshot, every
`Answer`, a delta state's `events()`, each response) where `StreamRecord` has `on_held`, or
given the state itself, as the status board was before events. With `--against DIR`
(another checkout's source) it alternates fresh processes of both builds, baseline first.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a file: streams.py beside

from streams import CLUSTERS, assignment, cluster, compare_builds

from xdscp.cache import Snapshot, TypeUrl
from xdscp.server.delta import DeltaRequest, DeltaStreamState
from xdscp.server.nodes import NodeInfo
from xdscp.server.protocol import Request, StreamState
from xdscp.server.rules import RequestKind
from xdscp.server.status import StreamRecord

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT
NAMES = tuple(f"svc-{i:02d}" for i in range(CLUSTERS))
EVENTS = hasattr(StreamRecord, "on_held")  # the event-built record
_TOLD = {RequestKind.ACK, RequestKind.RESUBSCRIBE, RequestKind.NACK, RequestKind.DUPLICATE_NACK,
         RequestKind.STALE}  # what the shell told the view-based record  # fmt: skip


class Stream:
    """One state and its record, fed as the shell feeds them."""

    def __init__(self, index: int, delta: bool, snapshot: Snapshot) -> None:
        self.delta = delta
        self.state: Any = (DeltaStreamState if delta else StreamState)(snapshot=snapshot)
        node = NodeInfo(f"bench-{index:05d}")
        if EVENTS:
            self.record = StreamRecord(node, "ADS", "envoy", snapshot, delta=delta)
        else:
            self.record = StreamRecord(node, "ADS", self.state, "envoy")  # type: ignore[call-arg,arg-type]

    def _told(self, responses: Any) -> Any:
        if EVENTS:
            held = self.state.events()
            if held:
                self.record.on_held(held)
        now = time.time()
        for response in responses:
            self.record.on_push(response if EVENTS else response.type_url, now)
        return responses

    def request(self, request: Any) -> Any:
        handled = self.state.on_request(request)
        if EVENTS or handled.answer.kind in _TOLD:
            self.record.on_answer(handled.answer, time.time())
        return self._told(handled.responses)

    def snapshot(self, snapshot: Snapshot) -> Any:
        if EVENTS:
            self.record.on_snapshot(snapshot)
        return self._told(self.state.on_snapshot(snapshot))

    def ack(self, response: Any) -> Any:
        if self.delta:
            return self.request(DeltaRequest(response.type_url, response_nonce=response.nonce))
        names = NAMES if response.type_url == E else ()
        return self.request(
            Request(response.type_url, response.version_info, response.nonce, names)
        )

    def sync(self) -> None:
        (cds,) = self.request(DeltaRequest(C) if self.delta else Request(C))
        eds_request = DeltaRequest(E, NAMES) if self.delta else Request(E, resource_names=NAMES)
        (eds,) = self.request(eds_request)
        self.ack(cds)
        self.ack(eds)


def measure(n: int, delta: bool, changes: int) -> dict[str, Any]:
    """CPU ms of the initial sync and of each change, over `n` streams."""
    snapshot = Snapshot.of([*map(cluster, range(CLUSTERS)), *map(assignment, range(CLUSTERS))])
    gc.collect()  # both builds start from no garbage (their imports leave different amounts)
    started = time.process_time()
    streams = [Stream(i, delta, snapshot) for i in range(n)]
    for stream in streams:
        stream.sync()
    initial = time.process_time() - started
    spans = []
    for change in range(1, changes + 1):
        snapshot = snapshot.updated([assignment(change % CLUSTERS, change)], {})
        started = time.process_time()
        for stream in streams:
            (response,) = stream.snapshot(snapshot)
            stream.ack(response)
        spans.append(time.process_time() - started)
    return {
        "build": "events" if EVENTS else "view", "n": n, "delta": delta,
        "initial_ms": round(initial * 1000, 1),
        "change_ms_min": round(min(spans) * 1000, 2),
        "change_ms_median": round(statistics.median(spans) * 1000, 2),
    }  # fmt: skip


def compare(args: argparse.Namespace) -> None:
    """Alternate fresh processes of the baseline checkout and this one; min / median."""
    compare_builds(__file__, args, ("initial_ms", "change_ms_min", "change_ms_median"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (refused values exit with the usage)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="streams")
    parser.add_argument("--delta", action="store_true", help="delta xDS (default: SotW)")
    parser.add_argument("--changes", type=int, default=30, help="changes (min, median)")
    parser.add_argument("--against", help="another checkout's source dir: compare with it")
    parser.add_argument("--repeat", type=int, default=5, help="processes per build (--against)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.changes < 1:
        parser.error("--n and --changes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.against:
        compare(args)
    else:
        print(json.dumps(measure(args.n, args.delta, args.changes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
