"""Replicas sharing their clients' load: each writes what its clients report, all read it all.

A client reports its load (LRS) to the replica it is attached to. With an etcd registry,
every replica writes what its load book holds for the adaptive services (the bounded record
of `xdscp.load.fleet`) to `<registry root>/_load/replicas/<identity>`, with a lease (the
leader lease's TTL: a replica that dies takes its record with it) — at most every load
reporting interval (a replica's book holds nothing newer more often per client, and the
writes stay bounded whatever the number of clients), and only when it changed. Every
replica watches the others' records and feeds its adaptive loops its own book's load added
to theirs (`samples`: the plane's `LoadSamples` seam): the publisher
(`xdscp.plane.shared_weights`) decides from the whole fleet's clients, whichever replica
they are attached to; the others' loops follow the same load, so a replica elected after
the publisher stops starts from the same estimates.

The decisions are synchronous (`take` a watch event, `pending` a record to write); only
`run` does I/O. Records read are checked as hostile (`xdscp.load.fleet`): a refused record
is logged (`fleet_load_record_rejected`) and counted, and the replica's last good record
stays. Nothing runs until a service asks for adaptive weights.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import prometheus_client
import structlog
from prometheus_client import CollectorRegistry, Gauge

from xdscp.errors import EtcdError, ValidationError
from xdscp.etcd import EtcdClient, PrefixWatcher, WatchEvent, WatchEventType, keep_alive
from xdscp.load.fleet import FleetBook, encode_record
from xdscp.load.reports import Summaries, Summary, merge_summaries, samples_of
from xdscp.load.samples import LoadSample
from xdscp.registry import display_key
from xdscp.retry import Backoff

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
OwnLoad = Callable[[float], Summaries]  # this replica's load book at `now` (monotonic)
Adaptive = Callable[[], frozenset[str]]  # the services whose weights are computed
Load = dict[str, dict[str, Summary]]


def load_prefix(services_prefix: str) -> str:
    """`<registry root>/_load/` for a services prefix: `/xdscp/services/` gives
    `/xdscp/_load/`."""
    root = services_prefix.rstrip("/").rpartition("/")[0]
    return f"{root}/_load/"


@dataclass(frozen=True, slots=True)
class LoadCoordination:
    """How replicas share their load: the etcd client, the prefix, who this replica is, the
    record's lease TTL, how often it is written at most, and when a load is stale."""

    client: EtcdClient
    prefix: str
    identity: str
    lease_ttl: int
    interval_s: float
    stale_after_s: float

    @property
    def replicas_prefix(self) -> str:
        """Where the records are."""
        return f"{self.prefix}replicas/"

    @property
    def key(self) -> bytes:
        """This replica's record."""
        return f"{self.replicas_prefix}{self.identity}".encode()


class FleetMetrics:
    """Records written, the other replicas whose load is held, what was refused."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.writes = prometheus_client.Counter(
            "xdscp_fleet_load_writes",
            "Records of this replica's clients' load written for the other replicas",
            registry=metrics_registry,
        )
        self.replicas = Gauge(
            "xdscp_fleet_load_replicas", "Other replicas whose clients' load is held",
            registry=metrics_registry,
        )  # fmt: skip
        self.refused = prometheus_client.Counter(
            "xdscp_fleet_load_refused",
            "Other replicas' load refused (record | unknown_service | implausible)", ["reason"],
            registry=metrics_registry,
        )  # fmt: skip


class SharedLoad:
    """Built by `build_plane` with an etcd registry: `samples(now)` for the adaptive loops,
    `run()` for as long as the plane runs, `want()` once a service asks for adaptive
    weights."""

    def __init__(
        self,
        coordination: LoadCoordination,
        own: OwnLoad,
        adaptive: Adaptive,
        metrics: FleetMetrics,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self._c, self._own, self._adaptive, self._metrics = coordination, own, adaptive, metrics
        self._clock, self._wall = clock, wall
        self.fleet = FleetBook(coordination.stale_after_s)
        self._written: Load | None = None  # the load etcd holds (None: nothing yet)
        self._wanted = asyncio.Event()

    def samples(self, now: float) -> dict[str, list[LoadSample]]:
        """Per service, one sample per endpoint: this replica's clients' load and the other
        replicas' added up (`LoadSamples`)."""
        return samples_of(merge_summaries([self._own(now), self.fleet.summaries(now)]))

    def take(self, event: WatchEvent, now: float, wall: float) -> None:
        """A change of another replica's record: held, dropped, or refused (logged)."""
        try:
            replica = event.key.decode().removeprefix(self._c.replicas_prefix)
        except UnicodeDecodeError as exc:
            self._refused(event, f"key not UTF-8: {exc}")
            return
        if replica == self._c.identity:
            return  # this replica's own: its book is fresher
        if event.kind is WatchEventType.DELETE:
            self.fleet.drop(replica)
        else:
            adaptive = self._adaptive()
            try:
                parsed = self.fleet.take(replica, event.value, now, wall, adaptive.__contains__)
            except ValidationError as exc:
                self._refused(event, str(exc))
                return
            for reason, count in parsed.refused.items():
                self._metrics.refused.labels(reason).inc(count)
            if parsed.refused:
                level = log.warning if "implausible" in parsed.refused else log.debug
                level("fleet_load_entries_refused", replica=replica, refused=dict(parsed.refused))
        self._metrics.replicas.set(len(self.fleet.replicas))

    def _refused(self, event: WatchEvent, error: str) -> None:
        self._metrics.refused.labels("record").inc()
        log.warning("fleet_load_record_rejected", key=display_key(event.key), error=error)

    def pending(self, now: float, wall: float) -> tuple[bytes, Load] | None:
        """The record to write now and the load it holds; None when that load was written
        last (`written` once it is)."""
        adaptive = self._adaptive()
        own = {name: dict(s) for name, s in self._own(now).items() if name in adaptive}
        if own == self._written:
            return None
        record, left_out = encode_record(own, now, wall)
        if left_out:
            log.warning("fleet_load_record_truncated", services=left_out)
        return record, own

    def written(self, load: Load | None) -> None:
        """`load` is what etcd holds now (None: nothing, a new lease)."""
        self._written = load

    def want(self) -> None:
        """Some service asks for adaptive weights: share from now on."""
        self._wanted.set()

    async def run(self) -> None:
        """Follow the other replicas' records and write this one's, until cancelled."""
        await self._wanted.wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow())
            group.create_task(self._share())

    async def _follow(self) -> None:
        watcher = PrefixWatcher(self._c.client, self._c.replicas_prefix.encode())
        async for events in watcher.changes():
            for event in events:
                self.take(event, self._clock(), self._wall())

    async def _share(self) -> None:
        """Write this replica's record under a lease, a new lease whenever it is lost."""
        backoff = Backoff(0.1, float(self._c.lease_ttl))
        while True:
            try:
                await self._share_leased(backoff)
            except EtcdError as exc:  # LeaseExpiredError too: a new lease, written anew
                log.warning("fleet_load_write_failed", error=str(exc))
                await asyncio.sleep(backoff.next_delay())

    async def _share_leased(self, backoff: Backoff) -> None:
        client = self._c.client
        lease = await client.lease_grant(self._c.lease_ttl)
        self.written(None)  # a new lease holds nothing yet
        keeper = asyncio.create_task(keep_alive(client, lease, self._c.lease_ttl))
        try:
            while not keeper.done():
                found = self.pending(self._clock(), self._wall())
                if found is not None:
                    await client.put(self._c.key, found[0], lease=lease)
                    self.written(found[1])
                    self._metrics.writes.inc()
                    backoff.reset()
                await asyncio.wait([keeper], timeout=self._c.interval_s)
            keeper.result()  # raises why the lease ended
        finally:
            keeper.cancel()
            await asyncio.wait([keeper])
            with contextlib.suppress(EtcdError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await client.lease_revoke(lease)  # the record goes at once
