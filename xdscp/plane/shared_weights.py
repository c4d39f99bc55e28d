"""Replicas serving the same computed weights: one elected replica publishes, all serve.

Every replica runs its own adaptive loops (`WeightOverlay`, ticked by the plane); with an
etcd registry, the replicas also elect one publisher (`xdscp.health.Election`, its own
leader key). The publisher writes each adaptive service's weights, as its loop decided them,
to `<registry root>/_weights/services/<service>` (JSON `{"weights": {"ip:port": n}}`); every
replica, the publisher too, serves what it watches there in place of its own decision
(`impose`). The same weights, so the same bytes and versions, on every replica; a replica
that loses etcd keeps serving the last weights it saw, and a service without a record (no
publisher yet) is served by the replica's own loop.

What the publisher decides from: the registered loads (in etcd: the same for every replica)
and every replica's clients' LRS reports. A client reports to the replica it is attached to;
the replicas share what their clients report (`xdscp.plane.shared_load`: each writes its
load book's summary under `<registry root>/_load/replicas/`, each adds the others' to its
own), so the publisher decides from the whole fleet's clients even when none is attached to
it, and every replica's loop follows the same load (a replica elected after the publisher
stops starts from the same estimates).

Nothing runs until a service asks for adaptive weights.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from xdscp.errors import ValidationError
from xdscp.etcd import EtcdClient, PrefixWatcher, WatchEvent, WatchEventType
from xdscp.health import Election
from xdscp.model import UINT32_MAX, check_int, check_service_name
from xdscp.registry import display_key

log = structlog.get_logger(__name__)

Weights = Mapping[str, int]
Impose = Callable[[str, Weights | None], None]
Decided = Callable[[], Mapping[str, Weights]]
MAX_ENDPOINTS = 100_000


def weights_prefix(services_prefix: str) -> str:
    """`<registry root>/_weights/` for a services prefix: `/xdscp/services/` gives
    `/xdscp/_weights/`."""
    root = services_prefix.rstrip("/").rpartition("/")[0]
    return f"{root}/_weights/"


@dataclass(frozen=True, slots=True)
class WeightsCoordination:
    """How replicas share one publisher: the etcd client, the prefix, who this replica is,
    the leader lease's TTL and how often the publisher writes what changed."""

    client: EtcdClient
    prefix: str
    identity: str
    lease_ttl: int
    interval_s: float

    @property
    def services_prefix(self) -> str:
        """Where the records are."""
        return f"{self.prefix}services/"

    def key(self, service: str) -> bytes:
        """One service's record."""
        return f"{self.services_prefix}{service}".encode()


def encode_weights(weights: Weights) -> bytes:
    """The record's JSON (sorted: the same weights are the same bytes)."""
    return json.dumps({"weights": dict(sorted(weights.items()))}, separators=(",", ":")).encode()


def parse_weights(raw: bytes) -> dict[str, int]:
    """A record's weights; `ValidationError` for anything else."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValidationError("weights", f"not JSON: {exc}") from None
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or len(weights) > MAX_ENDPOINTS:
        raise ValidationError("weights", 'must be {"weights": {"ip:port": n, ...}}')
    out = {}
    for key, value in weights.items():
        if not isinstance(key, str) or not key:
            raise ValidationError("weights", f"endpoint keys must be ip:port, got {key!r}")
        out[key] = check_int(f"weights.{key}", value, 1, UINT32_MAX)
    return out


class SharedWeights:
    """Built by `build_plane` with an etcd registry; `run(impose)` for as long as the plane
    runs, `want()` once a service asks for adaptive weights."""

    def __init__(self, coordination: WeightsCoordination, decided: Decided) -> None:
        self._c, self._decided = coordination, decided
        self._wanted = asyncio.Event()
        self.election = Election(
            coordination.client, f"{coordination.prefix}leader".encode(),
            coordination.identity, coordination.lease_ttl, role="publisher",
        )  # fmt: skip

    def want(self) -> None:
        """Some service asks for adaptive weights: elect and follow from now on."""
        self._wanted.set()

    async def run(self, impose: Impose) -> None:
        """Follow the records (every replica) and publish when elected, until cancelled."""
        await self._wanted.wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow(impose))
            group.create_task(self.election.lead(self._publish))

    async def _follow(self, impose: Impose) -> None:
        watcher = PrefixWatcher(self._c.client, self._c.services_prefix.encode())
        async for events in watcher.changes():
            for event in events:
                found = self._parse(event)
                if found is not None:
                    impose(*found)

    def _parse(self, event: WatchEvent) -> tuple[str, dict[str, int] | None] | None:
        try:
            service = check_service_name(event.key.decode().removeprefix(self._c.services_prefix))
            if event.kind is WatchEventType.DELETE:
                return service, None
            return service, parse_weights(event.value)
        except (ValidationError, UnicodeDecodeError) as exc:
            log.warning("weights_record_rejected", key=display_key(event.key), error=str(exc))
            return None

    async def _publish(self) -> None:
        """While elected: write each adaptive service's decided weights when they change,
        delete the records of services no longer adaptive."""
        written: dict[str, dict[str, int]] = {}
        client = self._c.client
        log.info("weights_publisher_elected", identity=self._c.identity)
        while True:
            decided = {name: dict(w) for name, w in self._decided().items()}
            for name, weights in sorted(decided.items()):
                if written.get(name) != weights:
                    await client.put(self._c.key(name), encode_weights(weights))
                    written[name] = weights
            for gone in sorted(set(written) - set(decided)):
                await client.delete(self._c.key(gone))
                del written[gone]
            await asyncio.sleep(self._c.interval_s)
