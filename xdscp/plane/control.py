"""`xdscp serve`'s runtime: sources → `Pipeline` → cache → xDS server, plus the admin endpoint.

Each source publishes the complete set of services it owns, and the health stage its
verdicts; the control plane hands both to its `Pipeline` (the merge, the health overlay and
the translation, I/O-free) and decides when the pipeline works: a burst of publications costs
one merge, a loop turn after the first of them; Envoy's snapshot is built at once, the other
client kinds' a loop turn later (once the woken Envoy streams have written). Each snapshot
goes to the cache, whose watchers are the open streams. A service whose new input cannot be
translated keeps its last good resources (see `xdscp.translate.incremental`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import grpc
import structlog
from prometheus_client import CollectorRegistry, Counter

from xdscp.admin import SERVICES, AdminServer, ChangeFeed
from xdscp.cache import SnapshotCache
from xdscp.config import ServeOptions
from xdscp.errors import BindError, ConfigError
from xdscp.health import HealthStage, TargetKey, Verdict
from xdscp.keepalive import server_options
from xdscp.load import LoadSamples, Samples
from xdscp.load.lrs import LrsService
from xdscp.model import ClientKind, ServiceSet
from xdscp.plane.load import PlaneLoad
from xdscp.plane.pipeline import Pipeline
from xdscp.plane.shared_load import SharedLoad
from xdscp.plane.shared_weights import SharedWeights
from xdscp.plane.source_health import SourceMonitor
from xdscp.plane.view import PlaneView
from xdscp.retry import Backoff
from xdscp.server import CsdsService, StatusBoard, XdsMetrics, XdsService
from xdscp.server.listen import Listen, check_all, check_listen
from xdscp.sources import Source, StaticSource

log = structlog.get_logger(__name__)

SOURCE_MAX_BACKOFF_S = 30.0

MAX_REQUEST_BYTES = 8 << 20
SERVER_OPTIONS = [
    ("grpc.max_concurrent_streams", 1 << 20),
    # Pings: what the bootstraps xdscp writes send, and xdscp's own (xdscp.keepalive).
    *server_options(),
    # grpc lets a second process listen on the same port by default: two `xdscp serve`
    # would share the xDS port and split the clients at random between them.
    ("grpc.so_reuseport", 0),
    # grpc core refuses new calls past 1000 pending (randomly) and 3000 (always): thousands of
    # proxies reconnecting at once would be turned away.
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
    # A DiscoveryRequest up to 8 MiB: a 100k-name subscription with names up to ~80 bytes
    # (grpc's default is 4 MiB). Larger ones end with RESOURCE_EXHAUSTED. A stream's memory
    # peaks at ~6x this while one replaces the subscription (README, "Memory per stream").
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    # A fixed 64 KiB HTTP/2 receive window per stream: a client that sends faster than xdscp
    # reads (its stream is write-blocked) is held back after 64 KiB, not after megabytes of
    # window grown by BDP probing (measured: 2 MiB per never-reading stream instead of 7).
    ("grpc.http2.bdp_probe", 0),
]


def listen_addresses(options: ServeOptions) -> list[Listen]:
    """The xDS and admin addresses `options` tell xdscp to listen on."""
    return [
        Listen("xDS", options.xds_host, options.xds_port, "--xds (xds.address)"),
        Listen("admin", options.admin_host, options.admin_port, "--admin (admin.address)"),
    ]


@dataclass(frozen=True, slots=True)
class Serving:
    """The xDS side: metrics, the snapshot cache, per-node status, the dashboard's change
    feed, the ADS and CSDS services (LRS, with the load book, is `Loads`)."""

    metrics: XdsMetrics
    cache: SnapshotCache
    feed: ChangeFeed
    status: StatusBoard
    service: XdsService
    csds: CsdsService


@dataclass(frozen=True, slots=True)
class Loads:
    """Load reporting: the plane's load book (`PlaneLoad`) and the LRS service feeding it,
    served on the xDS port."""

    book: PlaneLoad
    lrs: LrsService


class ControlPlane:
    """The running plane, built by `build_plane`: `start()`, then `wait()` or `stop()`."""

    def __init__(
        self,
        *,
        options: ServeOptions,
        sources: Sequence[Source],
        pipeline: Pipeline,
        health: HealthStage,
        serving: Serving,
        monitor: SourceMonitor,
        view: PlaneView,
        admin: AdminServer,
        metrics_registry: CollectorRegistry,
        loads: Loads,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        load_samples: LoadSamples | None = None,
        shared: SharedWeights | None = None,
        fleet: SharedLoad | None = None,
    ) -> None:
        """`closers`: what `stop()` closes last (the etcd client the parts share). `loads`:
        the load book (`self.load`) and the LRS service; `load_samples`: the clients' load
        per service that adaptive weights follow (default: the load book's `samples`);
        `shared`: with etcd, the replicas serve one elected publisher's weights; `fleet`:
        with etcd, the replicas share their clients' load (the default samples are the
        fleet's)."""
        self.options, self.sources = options, tuple(sources)
        self.metrics_registry = metrics_registry
        self.pipeline, self.health, self.admin = pipeline, health, admin
        self.source_health, self.view = monitor, view  # the view: what the admin server shows
        self.metrics, self.cache, self.feed = serving.metrics, serving.cache, serving.feed
        self.status, self.service, self.csds = serving.status, serving.service, serving.csds
        self.load, self._lrs = loads.book, loads.lrs
        self._closers = tuple(closers)
        self.shared, self.fleet = shared, fleet
        own = loads.book.samples if fleet is None else fleet.samples
        self._load_samples = load_samples or own
        self.weight_pushes = Counter(
            "xdscp_adaptive_weight_pushes", "Computed weights pushed, per service",
            ["service"], registry=metrics_registry,
        )  # fmt: skip
        self._merge_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None  # keep a reference: it stops when collected
        self.xds_port = options.xds_port

    def reload(self) -> None:
        """SIGHUP: file sources re-read their file at once (etcd and DNS follow on their own)."""
        log.info("reload_requested")
        for source in self.sources:
            if isinstance(source, StaticSource):
                source.reload()

    def _published(self, position: int, services: ServiceSet) -> None:
        """Source number `position` (0-based) published: merged a loop turn later, once
        for a whole burst of publications."""
        self.pipeline.publish(position, services)
        if not self._merge_scheduled:
            self._merge_scheduled = True
            asyncio.get_running_loop().call_soon(self.rebuild)

    def rebuild(self) -> None:
        """Merge what the sources published, report the new clashes, let the health stage
        follow the merged set, and bring the snapshots up to date."""
        self._merge_scheduled = False
        result = self.pipeline.merge()
        for clash in result.clashes:
            log.warning(
                "service_name_clash", service=clash.service, source=clash.source,
                kind=str(clash.kind), kept_by=clash.kept_by, client_name=clash.client_name,
            )  # fmt: skip
        self.health.follow(self.pipeline.merged, result.changed)
        self._push(result.changed)

    def _verdicts(self, verdicts: Sequence[tuple[TargetKey, Verdict | None]]) -> None:
        """The health stage judged endpoints: serve the services they change anew."""
        changed = self.pipeline.apply_verdicts(verdicts)
        if changed:
            self._push(changed)

    def weigh(self, now: float, wall: float) -> frozenset[str]:
        """One tick of the adaptive weights (`now`: monotonic, `wall`: epoch seconds): the
        services reweighed are served anew, Envoy first. Nothing to weigh: nothing read."""
        if not self.pipeline.weights.adaptive:
            return frozenset()
        if self.shared is not None:
            self.shared.want()
        if self.fleet is not None:
            self.fleet.want()
        samples: Samples = self._load_samples(now)
        changed = self.pipeline.apply_loads(samples, now, wall)
        self._pushed(changed, "own")
        return changed

    def _imposed(self, service: str, weights: Mapping[str, int] | None) -> None:
        """The publisher's weights for `service` (None: gone): served by every replica."""
        self._pushed(self.pipeline.impose_weights(service, weights), "publisher")

    def _pushed(self, changed: frozenset[str], decided_by: str) -> None:
        """Log and count each reweighed service, and serve them anew."""
        for name in sorted(changed):
            self.weight_pushes.labels(name).inc()
            log.info(
                "weights_pushed", service=name, weights=self.pipeline.weights.weights(name),
                decided_by=decided_by,
            )  # fmt: skip
        if changed:
            self._push(changed)

    async def _weigh_every(self, interval_s: float) -> None:
        """Tick the adaptive weights every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.weigh(time.monotonic(), time.time())
            except Exception:  # one bad tick must not stop serving; the weights stay
                log.exception("weigh_failed")

    def _push(self, changed: frozenset[str] | None) -> None:
        """Tell the dashboard, then build each kind's snapshot, turn by turn (Envoy first)."""
        if changed is None or changed:
            self.feed.notify(SERVICES)
        self._build_turns(self.pipeline.turns)

    def _build_turns(self, turns: tuple[tuple[ClientKind, ...], ...]) -> None:
        """Build `turns[0]`'s kinds now, the rest one loop turn after another."""
        if not turns:
            return
        for kind in turns[0]:
            self.translate(kind)
        if turns[1:]:
            asyncio.get_running_loop().call_soon(self._build_turns, turns[1:])

    def translate(self, kind: ClientKind) -> None:
        """Bring `kind`'s snapshot in the cache up to date (no-op if it is)."""
        started = time.perf_counter()
        built = self.pipeline.build(kind)
        if built is None:
            return
        if kind is ClientKind.ENVOY:
            self.metrics.translation_rejected.inc(len(built.result.rejected))
        self.cache.set(str(kind), built.result.snapshot)
        seconds = time.perf_counter() - started
        self.metrics.snapshot_build.observe(seconds)
        log.info(
            "snapshot_built",
            client=str(kind),
            services=len(self.pipeline.merged),
            changed="all" if built.changed is None else built.changed,
            seconds=round(seconds, 4),
        )

    def listens(self) -> list[Listen]:
        """The addresses `start()` listens on (xDS, then admin)."""
        return listen_addresses(self.options)

    async def start(self) -> None:
        """Listen for xDS and admin requests and start every source.

        Every address is checked before any listens; `BindError` (one line naming the address
        and what to do) when one cannot be listened on, with nothing left listening.
        """
        xds, admin = self.listens()
        check_all([xds, admin])
        tls = self.options.tls
        credentials = None if tls is None else tls.credentials()  # bad files: before listening
        try:
            await self.admin.start()
        except OSError:
            check_listen(admin)  # the precise reason, when it can be told
            raise admin.error("it could not be listened on; choose another address") from None
        try:
            self._server = self._xds_server(xds, credentials)
        except BindError:
            await self.admin.stop()  # nothing left listening
            raise
        await self._server.start()
        log.info("xds_listening", host=self.options.xds_host, port=self.xds_port)
        for position, source in enumerate(self.sources):
            task = asyncio.create_task(self._supervise(position, source), name=source.name)
            self._tasks.append(task)
        self._tasks.append(asyncio.create_task(self.health.run(self._verdicts), name="health"))
        self._tasks.append(asyncio.create_task(self.source_health.run(), name="source_health"))
        weigh = self._weigh_every(self.options.weigh_interval_s)
        self._tasks.append(asyncio.create_task(weigh, name="weigh"))
        if self.shared is not None:
            shared = self.shared.run(self._imposed)
            self._tasks.append(asyncio.create_task(shared, name="shared_weights"))
        if self.fleet is not None:
            self._tasks.append(asyncio.create_task(self.fleet.run(), name="shared_load"))

    def _xds_server(
        self, xds: Listen, credentials: grpc.ServerCredentials | None
    ) -> grpc.aio.Server:
        """The xDS gRPC server, bound to its address (listening) but not started: grpc
        closes an unstarted server's socket only when it is collected, so it is bound last."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        handlers = [*self.service.handlers(), *self.csds.handlers(), *self._lrs.handlers()]
        server.add_generic_rpc_handlers(handlers)
        try:
            if credentials is not None:
                self.xds_port = server.add_secure_port(str(xds), credentials)
            else:
                self.xds_port = server.add_insecure_port(str(xds))
        except RuntimeError:  # grpc's "Failed to bind": taken since the check, or refused
            check_listen(xds)
            raise xds.error("it could not be listened on; choose another address") from None
        return server

    async def _supervise(self, position: int, source: Source) -> None:
        """Run `source` until cancelled; restart it with backoff when it fails unexpectedly.

        Its last published services stay in force meanwhile. Only a configuration error
        (`ConfigError`) is fatal: it ends `wait()` with that error.
        """
        publish = partial(self._published, position)
        backoff = Backoff(0.1, SOURCE_MAX_BACKOFF_S)
        while True:
            started = time.monotonic()
            try:
                await source.run(publish)
                error = "run() returned"
            except ConfigError:
                log.exception("source_fatal", source=source.name)
                raise
            except Exception as exc:  # one source's bug must not stop serving
                log.exception("source_failed", source=source.name)
                error = f"{type(exc).__name__}: {exc}"
            self.source_health.failed(position, error)
            if time.monotonic() - started > SOURCE_MAX_BACKOFF_S:
                backoff.reset()  # it ran well for a while: this is a new failure
            delay = backoff.next_delay()
            log.warning("source_restarting", source=source.name, error=error, delay=delay)
            await asyncio.sleep(delay)

    async def wait(self) -> None:
        """Run until cancelled, or until a source fails with a configuration error."""
        if self._tasks:
            await asyncio.gather(*self._tasks)
        else:
            await asyncio.Event().wait()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sources, the admin endpoint and the xDS server (streams end).

        Bounded: a source that does not finish within `timeout_s` of being cancelled is
        left behind with a warning rather than holding the shutdown forever.
        """
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                log.warning("source_stop_timeout", source=task.get_name())
        self._tasks.clear()
        await self.admin.stop()
        if self._server is not None:
            self.service.stopping()  # the streams it ends close as server_shutdown
            server, self._server = self._server, None
            try:
                async with asyncio.timeout(timeout_s):
                    await server.stop(grace=1.0)
            except TimeoutError:
                log.warning("xds_server_stop_timeout")
            log.info("control_plane_stopped")
        closers, self._closers = self._closers, ()
        for close in closers:
            await close()
