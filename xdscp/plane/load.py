"""The plane's load book: clients' LRS reports in, the measured load out.

`PlaneLoad` is the `LoadSink` the LRS service (served on the xDS port) feeds: each report is
taken into one `LoadBook` for the endpoints the plane serves now, from a node that receives
the service (its xDS stream subscribes to the cluster), and a reporter's entries go with its
stream. Out: `samples(now)` (one `LoadSample` per endpoint: the seam the computed weights
read) and `measured(now)` (each endpoint's requests per second and share of its service:
what the admin API shows beside the predicted split). Clusters are named as xdscp names
them for every client kind: the service's name (Envoy's CDS/EDS and gRPC's alike); an
endpoint is its `HOST:PORT` key (Envoy reports per endpoint; gRPC per locality, which stands
for one endpoint when the translation gave it one of its own).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import prometheus_client
import structlog
from prometheus_client import CollectorRegistry, Gauge

from xdscp.load import LoadBook, LoadReport, LoadSample
from xdscp.load.reports import Summary
from xdscp.model import ClientKind, Service

log = structlog.get_logger(__name__)

Receives = Callable[[str, str], bool]  # (node id, cluster): the node's stream subscribes to it
KindOf = Callable[[str], ClientKind | None]  # node id: the kind of client its xDS streams are


class LoadMetrics:
    """Endpoint loads taken from LRS reports and refused (by reason), streams, the book."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.taken = prometheus_client.Counter(
            "xdscp_load_reports_taken_total",
            "Endpoint loads taken from clients' LRS reports into the load book",
            registry=metrics_registry,
        )
        self.refused = prometheus_client.Counter(
            "xdscp_load_reports_refused_total",
            "Endpoint loads refused (unknown_cluster | not_received | unknown_endpoint |"
            " unmapped_locality | implausible | interval | full)", ["reason"],
            registry=metrics_registry,
        )  # fmt: skip
        self.streams = Gauge(
            "xdscp_lrs_streams", "Open LRS streams that have reported (clients' load)",
            registry=metrics_registry,
        )  # fmt: skip
        self.entries = Gauge(
            "xdscp_load_book_entries", "(reporter, cluster, endpoint) loads the book holds",
            registry=metrics_registry,
        )  # fmt: skip


Place = tuple[str, str, str]  # a locality: region, zone, sub_zone


@dataclass(frozen=True, slots=True)
class _Endpoints:
    """One service's endpoint keys, and the keys in each locality."""

    service: Service
    keys: frozenset[str]
    by_locality: Mapping[Place, tuple[str, ...]]


class _Keys:
    """Each served service's endpoints, recomputed when the service changes."""

    def __init__(self) -> None:
        self._of: dict[str, _Endpoints] = {}

    def of(self, service: Service) -> _Endpoints:
        held = self._of.get(service.name)
        if held is None or held.service is not service:
            by_locality: dict[Place, list[str]] = {}
            for e in service.endpoints:
                place = (e.locality.region, e.locality.zone, e.locality.sub_zone)
                by_locality.setdefault(place, []).append(e.key)
            keys = frozenset(e.key for e in service.endpoints)
            places = {place: tuple(found) for place, found in by_locality.items()}
            held = self._of[service.name] = _Endpoints(service, keys, places)
        return held

    def forget_except(self, names: Mapping[str, Service]) -> None:
        for gone in set(self._of) - set(names):
            del self._of[gone]


class PlaneLoad:
    """The plane's `LoadSink` and the load it measured."""

    def __init__(
        self,
        book: LoadBook,
        metrics: LoadMetrics,
        services: Callable[[], Mapping[str, Service]],
        receives: Receives,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
        change_every_s: float = 1.0,
        kind_of: KindOf | None = None,
    ) -> None:
        """`on_change`: told that the measured load changed, at most every `change_every_s`
        (the dashboard's services feed: it re-sends the services with their load).
        `kind_of`: the kind of client a node is (the status board's: its xDS streams'
        node); a reporter whose node's kind is unknown counts as Envoy."""
        self.book, self._metrics = book, metrics
        self._services, self._receives, self._clock = services, receives, clock
        self._on_change, self._change_every_s = on_change, change_every_s
        self._changed_at: float | None = None
        self._keys = _Keys()
        self._reporting: set[str] = set()  # the reporters whose streams are open
        self._kind_of = kind_of
        self._kinds: dict[str, ClientKind] = {}  # reporter -> its client kind, at its first report

    def reports(self, reporter: str, reports: list[LoadReport]) -> None:
        """A stream's reports: each load of a served endpoint of a service its node
        receives replaces that reporter's last; the rest are counted, by reason."""
        node = reporter.rpartition("#")[0]
        services = self._services()
        refused_before = dict(self.book.refused)
        refused: Counter[str] = Counter()
        self._reporting.add(reporter)
        if reporter not in self._kinds:
            kind = None if self._kind_of is None else self._kind_of(node)
            self._kinds[reporter] = ClientKind.ENVOY if kind is None else kind
        for report in reports:
            kept = []
            for load in report.loads:
                if load.cluster not in services:
                    refused["unknown_cluster"] += 1
                elif not self._receives(node, load.cluster):
                    refused["not_received"] += 1
                else:
                    kept.append(load)
            if not kept:
                continue
            self.book.record(
                reporter, LoadReport(report.node, report.interval_s, tuple(kept)), self._clock(),
                lambda cluster, endpoint: self._known(services, cluster, endpoint),
            )  # fmt: skip
        for reason, count in self.book.refused.items():
            refused[reason] += count - refused_before.get(reason, 0)
        refused = +refused  # the reasons that grew
        self._account(reporter, sum(len(r.loads) for r in reports), refused)
        self._changed()

    def _changed(self) -> None:
        now = self._clock()
        if self._on_change is None or (
            self._changed_at is not None and now - self._changed_at < self._change_every_s
        ):
            return
        self._changed_at = now
        self._on_change()

    def _account(self, reporter: str, loads: int, refused: Counter[str]) -> None:
        refused_count = sum(refused.values())
        self._metrics.taken.inc(max(loads - refused_count, 0))
        for reason, count in refused.items():
            self._metrics.refused.labels(reason).inc(count)
        self._metrics.entries.set(len(self.book))
        self._metrics.streams.set(len(self._reporting))
        if refused:
            log.debug("load_reports_refused", reporter=reporter, refused=dict(refused))

    def _known(self, services: Mapping[str, Service], cluster: str, endpoint: str) -> bool:
        service = services.get(cluster)
        return service is not None and endpoint in self._keys.of(service).keys

    def endpoint_of(self, cluster: str, locality: Any) -> str | None:
        """The endpoint a gRPC client's locality stands for: the one whose own locality
        the translation named after it (`.../HOST:PORT`), or the only endpoint there. A
        locality of several endpoints stands for none (counted `unmapped_locality`)."""
        service = self._services().get(cluster)
        if service is None:
            self._metrics.refused.labels("unknown_cluster").inc()
            return None
        endpoints = self._keys.of(service)
        named = str(locality.sub_zone).rpartition("/")[2]
        if named in endpoints.keys:
            return named
        place = (str(locality.region), str(locality.zone), str(locality.sub_zone))
        found = endpoints.by_locality.get(place, ())
        if len(found) == 1:
            return found[0]
        self._metrics.refused.labels("unmapped_locality").inc()  # several endpoints, or none
        return None

    def clusters(self) -> list[str]:
        """The clusters to ask for (clients that cannot be told "all"): every service."""
        return sorted(self._services())

    def stream_ended(self, reporter: str) -> None:
        """A reporter's stream ended: its reports no longer count."""
        self.book.forget(reporter)
        self._reporting.discard(reporter)
        self._kinds.pop(reporter, None)
        self._metrics.streams.set(len(self._reporting))
        self._metrics.entries.set(len(self.book))

    def summaries(self, now: float | None = None) -> dict[str, dict[str, Summary]]:
        """Per service, per endpoint, the reports added up (what replicas share)."""
        return self.book.summaries(self._clock() if now is None else now)

    def samples(self, now: float | None = None) -> dict[str, list[LoadSample]]:
        """Per service, one plausible sample per endpoint (the computed weights' input)."""
        return self.book.samples(self._clock() if now is None else now)

    def measured(self, now: float | None = None) -> dict[str, dict[str, tuple[float, float]]]:
        """Per served service, each reported endpoint's (requests per second, share of the
        service's reported requests)."""
        services = self._services()
        self._keys.forget_except(services)
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for cluster, rates in self.book.rates(self._clock() if now is None else now).items():
            if cluster not in services:
                continue
            total = sum(rates.values())
            out[cluster] = {
                endpoint: (rps, rps / total if total > 0 else 0.0)
                for endpoint, rps in sorted(rates.items())
            }
        return out

    def kinds(self, now: float | None = None) -> dict[str, dict[ClientKind, float]]:
        """Per served service with reported load, each client kind's fraction of the
        service's reported requests per second (the fractions sum to 1; when nothing was
        sent, each reporter counts alike): whose balancing the measured split is, and so
        whose prediction it is compared with."""
        services = self._services()
        out: dict[str, dict[ClientKind, float]] = {}
        for cluster, rates in self.book.reporter_rates(
            self._clock() if now is None else now
        ).items():
            if cluster not in services:
                continue
            idle = sum(rates.values()) <= 0  # then each reporter counts alike
            by_kind: dict[ClientKind, float] = {}
            for reporter, rps in rates.items():
                kind = self._kinds.get(reporter, ClientKind.ENVOY)
                by_kind[kind] = by_kind.get(kind, 0.0) + (1.0 if idle else rps)
            total = sum(by_kind.values())
            out[cluster] = {kind: by_kind[kind] / total for kind in sorted(by_kind)}
        return out
