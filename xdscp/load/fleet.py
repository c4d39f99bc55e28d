"""The fleet's load: what every replica's clients report, shared as bounded records, sans I/O.

With several `xdscp serve` replicas, each client reports to the replica it is attached to;
each replica's `LoadBook` sees its own clients only. Each replica writes what its book holds
for the adaptive services (`encode_record`: per service, per endpoint, the `Summary` — the
sums, not the mean — with its times in wall-clock seconds) and reads the others' records
(`FleetBook.take`). An endpoint's load across the fleet is every replica's summary added
up, as one book holding every client's report would give it (`merge_summaries`):

- the rates (requests and errors per second) add up: each replica's clients sent their own
  requests, and the same endpoint's rate is the sum of what every client sent it;
- the utilization is the backend's own figure, not a share of it: the mean over every
  request that carried one, whichever replica's client carried it (the utilizations summed
  with the count of requests that carried one, divided last). Two replicas' clients seeing
  the same backend at 0.5 give 0.5, not 1;
- the sample's end is the latest report's end and its start the earliest one's, so the
  computed weights' rule "a sample that began before the last push is not estimated from"
  holds for every replica's part.

Times travel as wall-clock seconds (the replicas' monotonic clocks are unrelated) and are
read back as the reader's monotonic seconds: an end in the future (a writer's clock ahead)
is taken as now, keeping the interval's length. Replicas' clocks are assumed synchronised
(NTP), as for the loads registrations carry.

Everything read is hostile until checked: a record over `MAX_RECORD_BYTES`, not UTF-8 JSON
of the expected shape, or naming more than `MAX_ENDPOINTS` endpoints is refused whole
(`ValidationError`; the replica's last good record stays); an endpoint whose figures are not
finite, negative or beyond the bounds of a plausible report, or a service not adaptive here,
is refused alone and counted by reason. At most `MAX_REPLICAS` replicas are held.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xdscp.errors import ValidationError
from xdscp.load.reports import MAX_INTERVAL_S, Summaries, Summary, merge_summaries
from xdscp.load.samples import MAX_RPS, MAX_UTILIZATION
from xdscp.model import check_service_name

VERSION = 1
MAX_RECORD_BYTES = 1 << 20  # below etcd's default request limit (1.5 MiB)
MAX_ENDPOINTS = 20_000  # per record (a compact endpoint is ~60 bytes)
MAX_REPLICAS = 1000
MAX_REPLICA_ID = 256
MAX_ENDPOINT_KEY = 300
MAX_SPAN_S = 86400.0 + MAX_INTERVAL_S  # a book keeps a report up to its stale_after_s (1 day)
MAX_CARRIED = 2**53  # requests that carried a utilization: an exact float
FIELDS = 6  # rps, eps, utilization_total, carried, at, since

Known = Callable[[str], bool]  # a service whose load this replica wants (adaptive here)


def encode_record(summaries: Summaries, now: float, wall: float) -> tuple[bytes, list[str]]:
    """The record of `summaries` (monotonic times at `now`, `wall` its epoch seconds):
    `{"v": 1, "services": {service: {endpoint: [rps, eps, utilization_total, carried, at,
    since]}}}`, times in epoch seconds, sorted (the same load is the same bytes). Services
    are taken in name order while the record stays within `MAX_RECORD_BYTES` and
    `MAX_ENDPOINTS`; returns the record and the services left out."""
    services: dict[str, dict[str, list[float | int]]] = {}
    size, count, left_out = 40, 0, []
    for name in sorted(summaries):
        endpoints = {key: _fields(s, now, wall) for key, s in sorted(summaries[name].items())}
        cost = len(json.dumps({name: endpoints}, separators=(",", ":")))
        if size + cost > MAX_RECORD_BYTES or count + len(endpoints) > MAX_ENDPOINTS:
            left_out.append(name)
            continue
        services[name], size, count = endpoints, size + cost, count + len(endpoints)
    record = {"v": VERSION, "services": services}
    return json.dumps(record, separators=(",", ":")).encode(), left_out


def _fields(s: Summary, now: float, wall: float) -> list[float | int]:
    return [s.rps, s.eps, s.utilization_total, s.carried, wall - (now - s.at),
            wall - (now - s.since)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Parsed:
    """A record read: its summaries (the reader's monotonic times) and what was refused,
    counted by reason (`unknown_service`, `implausible`)."""

    summaries: dict[str, dict[str, Summary]]
    refused: Counter[str]


def parse_record(raw: bytes, now: float, wall: float, known: Known) -> Parsed:
    """A replica's record read at `now` (monotonic; `wall`: epoch seconds): the endpoints of
    the `known` services that are plausible. `ValidationError` when the record itself is
    refused (size, encoding, shape)."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValidationError("load record", f"{len(raw)} bytes, more than {MAX_RECORD_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError("load record", f"not UTF-8: {exc}") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValidationError("load record", f"not JSON: {exc}") from None
    services = _services(data)
    out: dict[str, dict[str, Summary]] = {}
    refused: Counter[str] = Counter()
    for name, endpoints in services.items():
        if not known(check_service_name(name)):
            refused["unknown_service"] += len(endpoints)
            continue
        for key, fields in endpoints.items():
            summary = _summary(key, fields, now, wall)
            if summary is None:
                refused["implausible"] += 1
            else:
                out.setdefault(name, {})[key] = summary
    return Parsed(out, refused)


def _services(data: Any) -> dict[str, dict[Any, Any]]:
    """The record's services, its shape and size checked."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValidationError("load record", f'must be {{"v": {VERSION}, "services": {{...}}}}')
    services = data.get("services")
    if not isinstance(services, dict):
        raise ValidationError("load record", '"services" must be an object')
    count = 0
    for name, endpoints in services.items():
        if not isinstance(endpoints, dict):
            raise ValidationError("load record", f"service {name!r}: must be an object")
        count += len(endpoints)
    if count > MAX_ENDPOINTS:
        raise ValidationError("load record", f"{count} endpoints, more than {MAX_ENDPOINTS}")
    return services


def _summary(key: Any, fields: Any, now: float, wall: float) -> Summary | None:
    """One endpoint's figures as a `Summary` at `now`, None when implausible."""
    named = isinstance(key, str) and 0 < len(key) <= MAX_ENDPOINT_KEY
    figures = _figures(fields) if named else None
    if figures is None:
        return None
    rps, eps, total, carried, at, since = figures
    if not all(math.isfinite(f) and f >= 0 for f in figures):
        return None
    if rps > MAX_RPS or eps > rps or carried != int(carried) or carried > MAX_CARRIED:
        return None
    if total > MAX_UTILIZATION * carried or not 0 <= at - since <= MAX_SPAN_S:
        return None
    end = now - max(0.0, wall - at)  # a writer's clock ahead: taken as now
    return Summary(rps, eps, total, int(carried), end, end - (at - since))


def _figures(fields: Any) -> list[float] | None:
    """`fields` as FIELDS floats, None when it is not a list of as many numbers."""
    if not isinstance(fields, list) or len(fields) != FIELDS:
        return None
    if not all(isinstance(f, int | float) and not isinstance(f, bool) for f in fields):
        return None
    try:
        return [float(f) for f in fields]
    except OverflowError:  # an integer too large for a float
        return None


class FleetBook:
    """The other replicas' latest good records; `summaries(now)` adds up the fresh ones."""

    def __init__(self, stale_after_s: float) -> None:
        self._stale_after_s = stale_after_s
        self._held: dict[str, dict[str, dict[str, Summary]]] = {}

    @property
    def replicas(self) -> frozenset[str]:
        """The replicas whose load is held."""
        return frozenset(self._held)

    def take(self, replica: str, raw: bytes, now: float, wall: float, known: Known) -> Parsed:
        """`replica`'s record, written anew: it replaces that replica's last. Raises
        `ValidationError` (nothing replaced) for a refused record or replica name."""
        if not 0 < len(replica) <= MAX_REPLICA_ID:
            raise ValidationError("load record", f"replica name of {len(replica)} characters")
        if replica not in self._held and len(self._held) >= MAX_REPLICAS:
            raise ValidationError("load record", f"more than {MAX_REPLICAS} replicas")
        parsed = parse_record(raw, now, wall, known)
        self._held[replica] = parsed.summaries
        return parsed

    def drop(self, replica: str) -> None:
        """`replica`'s record is gone (its lease ended: it stopped)."""
        self._held.pop(replica, None)

    def summaries(self, now: float) -> dict[str, dict[str, Summary]]:
        """Every held replica's fresh summaries added up (one ended over `stale_after_s`
        before `now` no longer counts)."""
        fresh: list[Mapping[str, Mapping[str, Summary]]] = [
            {service: self._fresh(endpoints, now) for service, endpoints in held.items()}
            for held in self._held.values()
        ]
        return {name: held for name, held in merge_summaries(fresh).items() if held}

    def _fresh(self, endpoints: Mapping[str, Summary], now: float) -> dict[str, Summary]:
        return {k: s for k, s in endpoints.items() if now - s.at <= self._stale_after_s}
