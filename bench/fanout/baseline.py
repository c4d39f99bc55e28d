"""Baseline server: the floor for a Python grpc.aio ADS server serving this benchmark.

Run: `python -m bench.fanout.baseline --resources DIR [--port 0]` (DIR from
`bench.fanout.resources.write_resources`). Every stream gets the same pre-serialized
responses, built once; nothing is serialized per stream. Prints `{"event": "listening",
"port": P}`; stdin: "CHANGE K" pushes the pre-loaded eds-K.pb to every EDS-subscribed stream
and prints `{"event": "pushed", ...}`; "STATS" prints the ACK tally; "STOP" or EOF exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from bench.fanout.resources import CLUSTER_TYPE, ENDPOINT_TYPE

# grpc core rejects new calls waiting to be matched to the application beyond these
# (random early drop from the soft limit, 1000 by default; all beyond the hard one, 3000):
# a burst of thousands of ADS streams opening at once would be refused otherwise.
SERVER_OPTIONS = [
    ("grpc.max_concurrent_streams", 1_000_000),
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
]
METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


def emit(event: str, **fields: Any) -> None:
    """Write one control event as a JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


@dataclass(slots=True)
class Payload:
    """A pre-serialized response and the version and nonce inside it."""

    data: bytes
    type_url: str
    version: str
    nonce: str

    @classmethod
    def load(cls, path: Path) -> Payload:
        """Read one serialized DiscoveryResponse."""
        data = path.read_bytes()
        parsed = discovery_pb2.DiscoveryResponse.FromString(data)
        return cls(data, parsed.type_url, parsed.version_info, parsed.nonce)


@dataclass(slots=True)
class Hub:
    """Current responses, the subscribed streams' queues, and the ACK tally."""

    cds: Payload
    eds: Payload
    changes: dict[int, Payload]
    eds_queues: set[asyncio.Queue[Payload]] = field(default_factory=set)
    acks: Counter[str] = field(default_factory=Counter)
    streams: int = 0

    def push(self, change: int) -> int:
        """Make change `change` current and queue it on every EDS stream."""
        self.eds = self.changes[change]
        for queue in self.eds_queues:
            queue.put_nowait(self.eds)
        return len(self.eds_queues)


class Action(Enum):
    """What the baseline does with one request."""

    SEND_CLUSTERS = "send_clusters"
    SUBSCRIBE_ENDPOINTS = "subscribe_endpoints"
    ACK = "ack"
    NACK = "nack"
    IGNORE = "ignore"


def classify(type_url: str, nonce: str, has_error: bool, sent: dict[str, str]) -> Action:
    """Decide on one request. `sent` maps a type URL to the nonce last written on the stream
    ("" while the first response is queued); this function marks a type as answered.

    A request carrying the last nonce is an ACK, or a NACK with error_detail; the first
    request of a type gets the current response; anything else (a stale nonce, a repeated
    subscription: the baseline serves every CLA to every stream) is ignored.
    """
    if nonce and nonce == sent.get(type_url):
        return Action.NACK if has_error else Action.ACK
    if type_url in sent or type_url not in (CLUSTER_TYPE, ENDPOINT_TYPE):
        return Action.IGNORE
    sent[type_url] = ""
    return Action.SEND_CLUSTERS if type_url == CLUSTER_TYPE else Action.SUBSCRIBE_ENDPOINTS


async def read_requests(
    requests: Any, hub: Hub, queue: asyncio.Queue[Payload], sent: dict[str, str]
) -> None:
    """Apply `classify` to each request: queue responses, tally ACKs by type and version."""
    async for request in requests:
        type_url = request.type_url
        action = classify(type_url, request.response_nonce, request.HasField("error_detail"), sent)
        if action is Action.ACK:
            hub.acks[f"{type_url.rsplit('.', 1)[-1]}:{request.version_info}"] += 1
        elif action is Action.SEND_CLUSTERS:
            queue.put_nowait(hub.cds)
        elif action is Action.SUBSCRIBE_ENDPOINTS:
            hub.eds_queues.add(queue)
            queue.put_nowait(hub.eds)


def report_end(reader: asyncio.Task[None]) -> None:
    """Say on stderr why a stream's reader stopped, if it failed."""
    error = None if reader.cancelled() else reader.exception()
    if error is not None:
        print(f"stream reader failed: {error!r}", file=sys.stderr, flush=True)


def make_handler(hub: Hub) -> grpc.RpcMethodHandler:
    """The ADS stream handler: a reader task answering requests, this task writing bytes."""

    async def stream(requests: Any, context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue[Payload] = asyncio.Queue()
        sent: dict[str, str] = {}
        hub.streams += 1
        reader = asyncio.create_task(read_requests(requests, hub, queue, sent))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when="FIRST_COMPLETED")
                if getter not in done:
                    getter.cancel()
                    report_end(reader)
                    return
                payload = getter.result()
                sent[payload.type_url] = payload.nonce
                await context.write(payload.data)
        finally:
            hub.eds_queues.discard(queue)
            hub.streams -= 1
            reader.cancel()

    return grpc.stream_stream_rpc_method_handler(
        stream,
        request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
        response_serializer=None,
    )


async def control(hub: Hub) -> None:
    """Read CHANGE/STATS/STOP lines from stdin until STOP or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while raw := await reader.readline():
        words = raw.decode().split() or [""]
        if words[0] == "STOP":
            return
        if words[0] == "CHANGE":
            started = time.monotonic()
            pushed = hub.push(int(words[1]))
            emit(
                "pushed",
                change=int(words[1]),
                streams=pushed,
                t_start=started,
                t_queued=time.monotonic(),
            )
        elif words[0] == "STATS":
            emit("stats", streams=hub.streams, acks=dict(hub.acks))


def load_hub(resources: Path) -> Hub:
    """Every pre-serialized response in `resources`: cds.pb and eds-K.pb."""
    changes = {
        int(path.stem.split("-")[1]): Payload.load(path) for path in resources.glob("eds-*.pb")
    }
    return Hub(Payload.load(resources / "cds.pb"), changes[0], changes)


async def serve(hub: Hub, port: int) -> None:
    """Serve until stdin says STOP."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                METHOD.split("/")[1], {METHOD.split("/")[2]: make_handler(hub)}
            )
        ]
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    emit("listening", port=bound)
    try:
        await control(hub)
    finally:
        await server.stop(grace=None)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(load_hub(args.resources), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
