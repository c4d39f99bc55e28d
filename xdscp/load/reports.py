"""Load reports from many clients, summed into one sample per endpoint: sans I/O.

Each client (an Envoy, a gRPC client) reports, every interval, what it sent to each endpoint
of each cluster it uses (LRS: successful, errors, issued, in progress, and the utilization
the backends reported through ORCA where the client propagates it). One endpoint's load is
what every client sent it: `LoadBook` keeps each client's latest report per endpoint and sums
them (rates add up; the utilization, the backend's own figure, is the mean over the requests
that carried one). `summaries` gives those sums before the mean is taken (`Summary`): sums
add up, so several books' summaries merge (`merge_summaries`) into what one book holding
every client's report would give — how replicas share their clients' load
(`xdscp.load.fleet`).

Bounded whatever the clients send: a report is taken only for endpoints the caller knows
(`known(cluster, endpoint)`: the services served), at most `max_entries` (client, endpoint)
pairs are kept, a client's entries go with its stream (`forget`), and entries older than
`stale_after_s` are dropped when samples are taken. What was refused is counted, by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from xdscp.load.samples import MAX_RPS, LoadSample, implausible

MAX_ENTRIES = 100_000
MAX_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class EndpointLoad:
    """What one client sent one endpoint of one cluster over one interval."""

    cluster: str
    endpoint: str
    successful: int
    errors: int
    utilization_total: float = 0.0  # the sum of the utilizations the requests carried
    utilization_requests: int = 0  # how many requests carried one


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One client's report: its node, the interval it covers, and the endpoints' loads."""

    node: str
    interval_s: float
    loads: tuple[EndpointLoad, ...]


@dataclass(slots=True)
class _Entry:
    at: float
    rps: float
    eps: float
    utilization_total: float
    utilization_requests: int
    total: int  # every request this reporter reported for the endpoint, over its stream
    interval_s: float = 0.0  # the interval the latest report covers (ending at `at`)


@dataclass(frozen=True, slots=True)
class Held:
    """One reporter's load of one endpoint, as the book holds it."""

    rps: float
    total: int
    utilization_total: float
    utilization_requests: int


@dataclass(frozen=True, slots=True)
class Summary:
    """One endpoint's load as some clients' latest reports add up: their rates summed, the
    utilizations their requests carried summed with how many carried one (the mean is taken
    last, so summaries add up), the latest report's end (`at`) and the earliest one's start
    (`since`), in the holder's monotonic seconds."""

    rps: float
    eps: float
    utilization_total: float
    carried: int
    at: float
    since: float

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            self.rps + other.rps, self.eps + other.eps,
            self.utilization_total + other.utilization_total, self.carried + other.carried,
            max(self.at, other.at), min(self.since, other.since),
        )  # fmt: skip

    def sample(self, endpoint: str) -> LoadSample:
        """The sample the computed weights read: the utilization is the mean over the
        requests that carried one."""
        utilization = self.utilization_total / self.carried if self.carried else 0.0
        return LoadSample(endpoint, self.at, self.rps, utilization, self.eps, self.since)


Summaries = Mapping[str, Mapping[str, Summary]]
"""Per cluster (a service's name), per endpoint key, a `Summary`."""


def merge_summaries(parts: Iterable[Summaries]) -> dict[str, dict[str, Summary]]:
    """Several holders' summaries as one: an endpoint's summaries added up."""
    out: dict[str, dict[str, Summary]] = {}
    for part in parts:
        for cluster, endpoints in part.items():
            held = out.setdefault(cluster, {})
            for endpoint, summary in endpoints.items():
                before = held.get(endpoint)
                held[endpoint] = summary if before is None else before + summary
    return out


def samples_of(summaries: Summaries) -> dict[str, list[LoadSample]]:
    """Per cluster, the plausible samples of `summaries`, by endpoint key."""
    out: dict[str, list[LoadSample]] = {}
    for cluster in sorted(summaries):
        for endpoint, summary in sorted(summaries[cluster].items()):
            sample = summary.sample(endpoint)
            if implausible(sample) is None:
                out.setdefault(cluster, []).append(sample)
    return out


Known = Callable[[str, str], bool]


class LoadBook:
    """The latest load each client reported for each endpoint; `samples` sums them."""

    def __init__(self, stale_after_s: float, max_entries: int = MAX_ENTRIES) -> None:
        self._stale_after_s = stale_after_s
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str, str], _Entry] = {}  # (reporter, cluster, endpoint)
        self.refused: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, reporter: str, report: LoadReport, now: float, known: Known) -> None:
        """Take `report` from `reporter` (one client's stream) at `now`: each load of a known
        endpoint replaces that reporter's last."""
        if not (math.isfinite(report.interval_s) and 0 < report.interval_s <= MAX_INTERVAL_S):
            self.refused["interval"] += len(report.loads) or 1
            return
        for load in report.loads:
            reason = self._record_one(reporter, report.interval_s, load, now, known)
            if reason is not None:
                self.refused[reason] += 1

    def _record_one(
        self, reporter: str, interval_s: float, load: EndpointLoad, now: float, known: Known
    ) -> str | None:
        if not known(load.cluster, load.endpoint):
            return "unknown_endpoint"
        counts = (load.successful, load.errors, load.utilization_requests)
        requests = load.successful + load.errors
        if (min(counts) < 0 or not math.isfinite(load.utilization_total)
                or load.utilization_total < 0 or requests / interval_s > MAX_RPS):  # fmt: skip
            return "implausible"
        key = (reporter, load.cluster, load.endpoint)
        before = self._entries.get(key)
        if before is None and len(self._entries) >= self._max_entries:
            return "full"
        total = requests + (0 if before is None else before.total)
        self._entries[key] = _Entry(now, requests / interval_s, load.errors / interval_s,
                                    load.utilization_total, load.utilization_requests,
                                    total, interval_s)  # fmt: skip
        return None

    def forget(self, reporter: str) -> None:
        """A client's stream ended: its reports no longer count."""
        for key in [k for k in self._entries if k[0] == reporter]:
            del self._entries[key]

    def samples(self, now: float) -> dict[str, list[LoadSample]]:
        """Per cluster, one sample per endpoint: every fresh client's load summed."""
        return samples_of(self.summaries(now))

    def summaries(self, now: float) -> dict[str, dict[str, Summary]]:
        """Per cluster, per endpoint, every fresh client's latest report added up."""
        self._drop_stale(now)
        out: dict[str, dict[str, Summary]] = {}
        for (_, cluster, endpoint), e in self._entries.items():
            summary = Summary(e.rps, e.eps, e.utilization_total, e.utilization_requests,
                              e.at, e.at - e.interval_s)  # fmt: skip
            held = out.setdefault(cluster, {})
            before = held.get(endpoint)
            held[endpoint] = summary if before is None else before + summary
        return out

    def rates(self, now: float) -> dict[str, dict[str, float]]:
        """Per cluster, each endpoint's requests per second: every fresh client's latest
        report summed (whether or not it carried a utilization)."""
        self._drop_stale(now)
        out: dict[str, dict[str, float]] = {}
        for (_, cluster, endpoint), entry in self._entries.items():
            rates = out.setdefault(cluster, {})
            rates[endpoint] = rates.get(endpoint, 0.0) + entry.rps
        return out

    def reporter_rates(self, now: float) -> dict[str, dict[str, float]]:
        """Per cluster, each reporter's requests per second to it (its fresh latest reports
        of the cluster's endpoints summed): who sent the cluster's load."""
        self._drop_stale(now)
        out: dict[str, dict[str, float]] = {}
        for (reporter, cluster, _), entry in self._entries.items():
            rates = out.setdefault(cluster, {})
            rates[reporter] = rates.get(reporter, 0.0) + entry.rps
        return out

    def held(self) -> dict[tuple[str, str, str], Held]:
        """What the book holds, by (reporter, cluster, endpoint): the latest interval's rate
        and utilization, and every request that reporter reported for that endpoint since
        its first report (while its entry lives)."""
        return {
            key: Held(e.rps, e.total, e.utilization_total, e.utilization_requests)
            for key, e in self._entries.items()
        }

    def _drop_stale(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.at > self._stale_after_s]:
            del self._entries[key]
