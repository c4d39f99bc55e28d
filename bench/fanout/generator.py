"""Load generator: N simulated xDS clients, each a node with its own ADS stream.

Run: `python -m bench.fanout.generator --target 127.0.0.1:PORT --n 1000 [--channels 10]`.

Streams are spread round-robin over `--channels` grpc.aio channels, each its own HTTP/2
connection (a local subchannel pool stops grpc from sharing one connection between them).
One connection per client would be the most faithful but costs the generator a socket and a
poller per client, which at 5000 clients measures the generator; 100 streams per connection
(the default) keeps the server's per-stream work dominant, stays within the common
MAX_CONCURRENT_STREAMS of 100, and still gives the server many connections to serve.

Control, one JSON object per line on stdout:
  {"event": "ready", ...}              all N streams have every Cluster and CLA, and ACKed them
  {"event": "armed", "change": K}      after stdin line "ARM K"
  {"event": "converged", "change": K, "t_last_ack": ...}  all N have sent the ACK of change K
  {"event": "done", ...} / {"event": "timeout", ...}
stdin: "ARM K" (recognise change K, see bench.fanout.resources), "STOP". Timestamps are
`time.monotonic()`, one clock for every process on the machine, so the orchestrator can
subtract its own trigger time. "ACKed" means the generator wrote the ACK to the transport;
the server's own processing of that ACK is not visible here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from bench.fanout.decode import ResponseMemo
from bench.fanout.state import Convergence, Request, StreamState

DEFAULT_STREAMS_PER_CHANNEL = 100
MAX_STREAMS = 20_000
MAX_ERRORS_SHOWN = 5
MEMO_LIMIT = 1024
METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


def emit(event: str, **fields: Any) -> None:
    """Write one control event as a JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


@dataclass(slots=True)
class Run:
    """Everything the streams share: decoder, tallies, errors."""

    streams: int
    memo: ResponseMemo = field(default_factory=ResponseMemo)
    encoded: dict[Request, bytes] = field(default_factory=dict)
    convergence: Convergence = field(init=False)
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.convergence = Convergence(self.streams)

    def record_error(self, node: str, error: BaseException) -> None:
        """Count one failed stream; show the first few."""
        self.errors += 1
        if self.errors <= MAX_ERRORS_SHOWN:
            emit("stream_error", node=node, error=repr(error)[:300])


def encode(request: Request, node: Any = None) -> bytes:
    """The serialized DiscoveryRequest; `node` is set on the stream's first request only."""
    message = discovery_pb2.DiscoveryRequest(
        version_info=request.version_info,
        type_url=request.type_url,
        response_nonce=request.response_nonce,
        resource_names=request.resource_names,
    )
    if node is not None:
        message.node.CopyFrom(node)
    return bytes(message.SerializeToString())


def encode_memo(request: Request, run: Run) -> bytes:
    """`encode` without a node, memoized: every stream ACKs the same responses."""
    data = run.encoded.get(request)
    if data is None:
        data = encode(request)
        if len(run.encoded) < MEMO_LIMIT:
            run.encoded[request] = data
    return data


async def run_stream(index: int, channel: grpc.aio.Channel, run: Run) -> None:
    """One simulated client: open, subscribe, ACK everything until cancelled."""
    node = discovery_pb2.DiscoveryRequest().node
    node.id = f"bench-node-{index:05d}"
    node.cluster = "bench"
    # Bytes in and out: responses are parsed (and ACKs serialized) once per distinct content.
    call = channel.stream_stream(METHOD)()
    state = StreamState()
    try:
        await call.write(encode(state.start(), node))
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                run.record_error(node.id, EOFError("server closed the stream"))
                return
            await handle_response(call, state, response, run)
    except grpc.aio.AioRpcError as error:
        run.record_error(node.id, error)
    finally:
        call.cancel()


async def handle_response(call: Any, state: StreamState, raw: bytes, run: Run) -> None:
    """Apply one response to the stream's state, write the requests, record the events."""
    parsed = run.memo.parse(raw)
    outcome = state.on_response(
        parsed.type_url, parsed.version, parsed.nonce, parsed.names, parsed.markers
    )
    for request in outcome.requests:
        await call.write(encode_memo(request, run))
    now = time.monotonic()
    if outcome.became_ready and run.convergence.stream_ready(now):
        tally = run.convergence
        emit(
            "ready",
            streams=run.streams,
            t_start=run.started,
            t_first_ready=tally.first_ready,
            t_ready=now,
            initial_s=now - run.started,
        )
    for change in outcome.markers:
        if run.convergence.change_acked(change, now):
            emit(
                "converged",
                change=change,
                streams=run.streams,
                t_first_ack=run.convergence.first_ack[change],
                t_last_ack=now,
            )


async def control(run: Run) -> None:
    """Read ARM/STOP lines from stdin until STOP or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while raw := await reader.readline():
        line = raw.decode().split() or [""]
        if line[0] == "STOP":
            return
        if line[0] == "ARM" and len(line) == 2:
            change = int(line[1])
            run.memo.arm(change)
            run.convergence.arm(change)
            emit("armed", change=change)


def open_channels(target: str, count: int) -> list[grpc.aio.Channel]:
    """`count` channels to `target`, each on its own HTTP/2 connection."""
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    return [grpc.aio.insecure_channel(target, options=options) for _ in range(count)]


async def main_async(target: str, streams: int, channels: int, limit_s: float) -> int:
    """Run every stream until STOP, end of stdin or `limit_s`; return the exit code."""
    run = Run(streams)
    pool = open_channels(target, channels)
    tasks = [asyncio.create_task(run_stream(i, pool[i % channels], run)) for i in range(streams)]
    code = 0
    try:
        await asyncio.wait_for(control(run), limit_s)
    except TimeoutError:
        emit(
            "timeout",
            after_s=limit_s,
            ready=run.convergence.ready_count,
            acked=run.convergence.acked,
        )
        code = 2
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in pool))
    emit(
        "done",
        streams=streams,
        channels=channels,
        errors=run.errors,
        ready=run.convergence.ready_count,
        acked=run.convergence.acked,
    )
    return code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the ADS server")
    parser.add_argument("--n", type=int, default=100, help="simulated clients (streams)")
    parser.add_argument(
        "--channels",
        type=int,
        default=0,
        help=f"HTTP/2 connections (default: N/{DEFAULT_STREAMS_PER_CHANNEL})",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="global limit, seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= MAX_STREAMS:
        parser.error(f"--n must be within 1..{MAX_STREAMS}")
    if args.channels <= 0:
        args.channels = math.ceil(args.n / DEFAULT_STREAMS_PER_CHANNEL)
    args.channels = min(args.channels, args.n)
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    return asyncio.run(main_async(args.target, args.n, args.channels, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
