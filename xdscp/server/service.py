"""The grpc.aio edge: ADS and the per-type CDS/EDS/LDS/RDS services, state of the world and delta.

Each stream runs one loop over two event sources — requests from the client and snapshot
changes from the cache — feeding the stream's state through one face, `seams.StreamProtocol`
(`StreamState` for state of the world, `DeltaStreamState` for delta, chosen once when the
stream opens with its `variants.Variant`, which also says how `wire.py` decodes its
requests), and writing the responses it returns. A response is encoded (`wire.encode`) from
shared, pre-serialized resources, once for every stream sent the same one. Each request's `Answer`
event is counted, logged, recorded on the status board and told to observers. The status
board's record of the stream (`status.StreamRecord`) is told events only, in order: the
snapshot served, each `Answer`, the state's other events (`events()`: a delta stream's
changed types) and each response pushed; it never holds the state. The cache is reached
through `seams.SnapshotFeed` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc
import structlog
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError

from xdscp import __version__
from xdscp.cache import Snapshot, TypeUrl
from xdscp.errors import SlowClientError, StreamAbortError, UndecodableRequestError
from xdscp.server.closing import ABORTS, Close, close_of
from xdscp.server.mailbox import REQUEST, Mailbox
from xdscp.server.messages import DeltaResponse, Response
from xdscp.server.metrics import XdsMetrics, short_type
from xdscp.server.nodes import NodeGrouper, group_by_client_kind, node_info
from xdscp.server.rules import ACCEPTED, Answer, RequestKind
from xdscp.server.seams import SnapshotFeed, StreamProtocol
from xdscp.server.status import StatusBoard, StreamRecord, truncate
from xdscp.server.variants import DELTA, SOTW, Q, R, Variant
from xdscp.server.wire import encode

log = structlog.get_logger(__name__)

_Event = tuple[str, Any]
_END = ("end", None)
_V3 = "envoy.service"
SERVICES: dict[str, tuple[str, str, frozenset[TypeUrl]]] = {
    # gRPC service → (state-of-the-world method, delta method, the types it serves)
    f"{_V3}.discovery.v3.AggregatedDiscoveryService": (
        "StreamAggregatedResources", "DeltaAggregatedResources", frozenset(TypeUrl),
    ),
    f"{_V3}.cluster.v3.ClusterDiscoveryService": (
        "StreamClusters", "DeltaClusters", frozenset({TypeUrl.CLUSTER}),
    ),
    f"{_V3}.endpoint.v3.EndpointDiscoveryService": (
        "StreamEndpoints", "DeltaEndpoints", frozenset({TypeUrl.ENDPOINT}),
    ),
    f"{_V3}.listener.v3.ListenerDiscoveryService": (
        "StreamListeners", "DeltaListeners", frozenset({TypeUrl.LISTENER}),
    ),
    f"{_V3}.route.v3.RouteDiscoveryService": (
        "StreamRoutes", "DeltaRoutes", frozenset({TypeUrl.ROUTE}),
    ),
}  # fmt: skip


ENCODED_CACHE_BYTES = 16 << 20  # encoded responses kept for reuse by other streams
WRITE_TIMEOUT_S = 30.0  # a stream whose client reads nothing for this long is closed
HALF_CLOSE_GRACE_S = 2.0  # a stream whose requests ended is closed (OK) this much later: grpc
# cancels a cancelled stream a moment after ending its requests, later on a loaded machine


class StreamEventKind(StrEnum):
    """What a `StreamEvent` tells: a response pushed, or the client's answer to one."""

    PUSH = "push"
    ACK = "ack"  # also an ACK that added names (`RequestKind.RESUBSCRIBE`)
    NACK = "nack"
    DUPLICATE_NACK = "duplicate_nack"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """What happened on a stream: a response pushed, or the client's answer to one.

    For answers, the record has already been told of the answer (the accepted version,
    the NACK).
    """

    kind: StreamEventKind
    record: StreamRecord
    type_url: str
    nonce: str


# The request kinds observers are told of, as the events they are told.
_ANSWERS: dict[RequestKind, StreamEventKind] = {
    RequestKind.ACK: StreamEventKind.ACK,
    RequestKind.RESUBSCRIBE: StreamEventKind.ACK,
    RequestKind.NACK: StreamEventKind.NACK,
    RequestKind.DUPLICATE_NACK: StreamEventKind.DUPLICATE_NACK,
    RequestKind.STALE: StreamEventKind.STALE,
}


class XdsService:
    """Serves snapshots from `cache` to every stream; records status and metrics."""

    def __init__(
        self,
        cache: SnapshotFeed,
        metrics: XdsMetrics,
        status: StatusBoard,
        *,
        grouper: NodeGrouper = group_by_client_kind,
        identifier: str = "xdscp",
        write_timeout_s: float = WRITE_TIMEOUT_S,
        observers: Sequence[Callable[[StreamEvent], None]] = (),
    ) -> None:
        self.cache = cache
        self.write_timeout_s = write_timeout_s
        self.metrics = metrics
        self.status = status
        self.grouper = grouper
        # Called with every push and every answered request (embedding, tracing, benchmarks).
        self.observers: list[Callable[[StreamEvent], None]] = list(observers)
        self._encoded: dict[tuple[Any, ...], bytes] = {}  # see _encode; oldest first
        self._encoded_bytes = 0
        self._stopping = False
        control_plane = base_pb2.ControlPlane(identifier=f"{identifier} {__version__}")
        self._control_plane = control_plane.SerializeToString()

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """Generic handlers for every discovery service, state of the world and delta."""
        result = []
        for service, (method, delta_method, allowed) in SERVICES.items():
            stream = self._stream_method(service, allowed)
            handlers = {
                method: grpc.stream_stream_rpc_method_handler(
                    stream, request_deserializer=discovery_pb2.DiscoveryRequest.FromString
                ),
                delta_method: grpc.stream_stream_rpc_method_handler(
                    self._stream_method(service, allowed, delta=True),
                    request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                ),
            }
            result.append(grpc.method_handlers_generic_handler(service, handlers))
        return result

    def _stream_method(
        self, service: str, allowed: frozenset[TypeUrl], *, delta: bool = False
    ) -> Any:
        async def stream(requests: AsyncIterator[Any], context: Any) -> None:
            # context.write rather than an async generator: grpc.aio keeps the last value a
            # generator yielded until the next one, i.e. one response per idle stream.
            try:
                await self.serve_stream(requests, context.write, service, allowed, delta=delta)
            except StreamAbortError as exc:
                await context.abort(ABORTS[type(exc)][0], str(exc))

        return stream

    async def serve_stream(
        self,
        requests: AsyncIterator[Any],
        write: Callable[[bytes], Awaitable[None]],
        service: str,
        allowed: frozenset[TypeUrl],
        *,
        delta: bool = False,
    ) -> None:
        """One stream, from its first request until the client goes away.

        Memory is bounded: requests are read one at a time, the next once the last has been
        handled (`Mailbox`); a write blocked for `write_timeout_s` ends the stream. Raises a
        `StreamAbortError` (logged and counted here) when the stream must end with an error
        status; the servicer maps it to the gRPC status (`closing.ABORTS`).
        """
        queue: Mailbox[Any, Snapshot] = Mailbox()
        reader = asyncio.create_task(self._read(requests, queue))
        try:
            kind, first = await self._first(queue, service)
            if kind != REQUEST:
                return  # ended before its first request: never opened
            if delta:
                loop, close = self._open(DELTA, first, queue, service, allowed)
            else:
                loop, close = self._open(SOTW, first, queue, service, allowed)
            del first  # the node (kilobytes for Envoy) is not kept for the stream's lifetime
            error: BaseException | None = None
            try:
                async with contextlib.aclosing(loop) as chunks:
                    async for chunk in chunks:
                        await self._write(write, chunk)
                        del chunk  # hold nothing while the stream is idle
                # grpc ends a cancelled stream's requests first and cancels it a moment later:
                # waiting for that tells a cancel from a half-close
                await asyncio.sleep(HALF_CLOSE_GRACE_S)
            except BaseException as exc:
                error = exc
                raise
            finally:
                close(close_of(error, stopping=self._stopping))
        except StreamAbortError as exc:
            self.metrics.stream_errors.labels(ABORTS[type(exc)][1]).inc()
            raise
        finally:
            reader.cancel()

    async def _first(self, queue: Mailbox[Any, Snapshot], service: str) -> tuple[str, Any]:
        """The stream's first event. A stream whose first request is refused (undecodable)
        was never opened: it is logged as `stream_refused`, not closed."""
        try:
            return await queue.get()
        except StreamAbortError as exc:
            how = close_of(exc, stopping=self._stopping)
            log.warning(
                "stream_refused", service=service.rsplit(".", 1)[-1], reason=str(how.reason),
                code=how.code.name, details=truncate(how.details),
            )  # fmt: skip
            raise

    def stopping(self) -> None:
        """The server is shutting down: the streams it cancels close as `server_shutdown`."""
        self._stopping = True

    def _open(
        self,
        variant: Variant[Q, R],
        first: Any,
        queue: Mailbox[Any, Snapshot],
        service: str,
        allowed: frozenset[TypeUrl],
    ) -> tuple[AsyncGenerator[bytes, None], Callable[[Close], None]]:
        """Open the stream request `first` starts: (the loop of its responses' bytes, close)."""
        node = node_info(first.node)
        group = self.grouper(node)
        snapshot = self.cache.get(group)
        state = variant.new(allowed, snapshot)
        label = service.rsplit(".", 1)[-1] + variant.label
        record = StreamRecord(node, label, group, snapshot, delta=variant is DELTA)
        bound, close = self._register(record, queue)
        loop = self._loop(
            queue, state, variant.decode, record=record, event=(REQUEST, first), bound=bound
        )
        return loop, close

    def _register(
        self, record: StreamRecord, queue: Mailbox[Any, Snapshot]
    ) -> tuple[Any, Callable[[Close], None]]:
        """Put an opened stream on the status board, the metrics and the log; watch its
        group's snapshots. Returns (its bound logger, how to close it)."""
        node, group = record.node, record.group
        stream_id = self.status.add(record)
        stop = self.cache.watch(group, queue.put_snapshot)  # coalesced: the latest one waits
        client = str(node.kind)
        self.metrics.streams_opened.labels(client).inc()
        connected = self.metrics.connected_streams.labels(client)
        connected.inc()
        bound = log.bind(node=node.id, client=client, service=record.service)
        bound.info("stream_opened", group=group)
        opened = time.monotonic()

        def close(how: Close) -> None:
            stop()
            connected.dec()
            self.status.remove(stream_id)
            self.metrics.streams_closed.labels(client, how.reason).inc()
            level = bound.warning if how.reason.is_error else bound.info
            level(
                "stream_closed", reason=str(how.reason), code=how.code.name,
                details=truncate(how.details), seconds=round(time.monotonic() - opened, 3),
            )  # fmt: skip

        return bound, close

    async def _write(self, write: Callable[[bytes], Awaitable[None]], chunk: bytes) -> None:
        """Write one response; a client that reads none of it for the timeout is cut off."""
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await write(chunk)
        except TimeoutError:
            message = (
                f"xdscp: the client read no response for {self.write_timeout_s:g} s"
                " (write timeout); closing the stream"
            )
            raise SlowClientError(message) from None

    async def _read(self, requests: AsyncIterator[Any], queue: Mailbox[Any, Snapshot]) -> None:
        """Take requests off the wire one at a time, the next once the last has been taken:
        meanwhile HTTP/2 flow control holds the client back."""
        error: Exception | None = None
        try:
            messages = aiter(requests)
            while True:
                await queue.wait_for_room()
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    break
                queue.put_request(message)
                del message
        except DecodeError as exc:
            error = UndecodableRequestError(f"xdscp: undecodable request: {truncate(str(exc))}")
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        finally:
            queue.end(error)

    async def _loop(
        self,
        queue: Mailbox[Any, Snapshot],
        state: StreamProtocol[Q, R],
        decode: Callable[[Any], Q],
        *,
        record: StreamRecord,
        event: _Event,
        bound: Any,
    ) -> AsyncGenerator[bytes, None]:
        # type -> (nonce, time) of its latest push: only the latest can be ACKed, so a client
        # that never answers costs one entry per type, not one per push
        sent_at: dict[str, tuple[str, float]] = {}
        while event != _END:
            kind, payload = event
            event = _END  # drop the reference while handling (the first request holds the node)
            responses: Sequence[R]
            told: StreamEvent | None = None
            if kind == REQUEST:
                handled = state.on_request(decode(payload))
                told = self._account(record, handled.answer, sent_at, bound)
                responses = handled.responses
            else:
                record.on_snapshot(payload)
                responses = state.on_snapshot(payload)
            held = state.events()
            if held:
                record.on_held(held)
            if told is not None:  # observers see the record with the whole request applied
                self._tell(told)
            payload = None  # the request is not held while a write blocks
            now = time.time()
            for response in responses:
                sent_at[response.type_url] = (response.nonce, time.perf_counter())
                record.on_push(response, now)
                self.metrics.pushes.labels(short_type(response.type_url)).inc()
                push = StreamEvent(StreamEventKind.PUSH, record, response.type_url, response.nonce)
                self._tell(push)
                yield self._encode(response)
            payload, responses = None, ()  # hold nothing of this event while waiting
            event = await queue.get()

    def _tell(self, event: StreamEvent) -> None:
        for observer in self.observers:
            observer(event)

    def _encode(self, response: Response | DeltaResponse) -> bytes:
        """The response's bytes, encoded once for every stream that is sent the same one.

        Streams with the same subscriptions and history get byte-identical responses (same
        version, nonce and resources); at a change, thousands of them do. The key names every
        resource by name and content version, so equal keys mean equal bytes.
        """
        key = response.cache_key()
        data = self._encoded.get(key)
        if data is None:
            data = encode(response, self._control_plane)
            if len(data) <= ENCODED_CACHE_BYTES // 8:
                self._encoded[key] = data
                self._encoded_bytes += len(data)
                while self._encoded_bytes > ENCODED_CACHE_BYTES:  # oldest first
                    self._encoded_bytes -= len(self._encoded.pop(next(iter(self._encoded))))
        return data

    def _account(
        self,
        record: StreamRecord,
        answer: Answer,
        sent_at: dict[str, tuple[str, float]],
        bound: Any,
    ) -> StreamEvent | None:
        """Count, log and record one request's `Answer`; the event to tell observers once the
        state's other events reached the record."""
        type_url, nonce, kind = answer.type_url, answer.nonce, answer.kind
        label = short_type(type_url)
        pushed = sent_at.get(type_url)
        started = None
        if pushed is not None and pushed[0] == nonce:
            started = sent_at.pop(type_url)[1]
        record.on_answer(answer, time.time())
        told = _ANSWERS.get(kind)
        if kind in ACCEPTED:
            self.metrics.acks.labels(label).inc()
            if started is not None:
                self.metrics.push_to_ack.labels(label).observe(time.perf_counter() - started)
        elif kind is RequestKind.NACK:  # logged once per rejected response: repeats are duplicates
            self.metrics.nacks.labels(label).inc()
            error = truncate(answer.error)
            bound.warning("nack_received", type=label, nonce=nonce, error=error)
        elif kind is RequestKind.DUPLICATE_NACK:
            self.metrics.nacks_duplicate.labels(label).inc()
        elif kind is RequestKind.STALE:
            self.metrics.stale.labels(label).inc()
        return None if told is None else StreamEvent(told, record, type_url, nonce)
