"""Per-stream ADS client bookkeeping and run-wide convergence, synchronous and I/O-free.

A simulated client behaves like Envoy on SotW ADS: it opens with a wildcard CDS request,
subscribes by name to the CLA of every cluster it receives, and ACKs every response with
that response's `version_info` and `nonce`. The generator feeds decoded responses in and
writes out the requests this module returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.fanout.resources import CLUSTER_TYPE, ENDPOINT_TYPE


@dataclass(frozen=True, slots=True)
class Request:
    """One DiscoveryRequest to send (the node is added by the caller on the first one)."""

    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one response leads to: requests to send, and the events the ACK completes."""

    requests: tuple[Request, ...] = ()
    became_ready: bool = False
    markers: frozenset[int] = frozenset()


@dataclass(slots=True)
class StreamState:
    """One simulated client's ADS stream: versions, nonces, subscriptions, readiness."""

    cds_version: str = ""
    eds_version: str = ""
    clusters: tuple[str, ...] = ()
    received_clas: set[str] = field(default_factory=set)
    seen_markers: set[int] = field(default_factory=set)
    ready: bool = False

    def start(self) -> Request:
        """The first request on the stream: wildcard CDS."""
        return Request(CLUSTER_TYPE)

    def on_response(
        self, type_url: str, version: str, nonce: str, names: Iterable[str], markers: Iterable[int]
    ) -> Outcome:
        """Apply one response; return the requests (ACK first-or-last as Envoy does) to send."""
        if type_url == CLUSTER_TYPE:
            return self._on_clusters(version, nonce, tuple(sorted(set(names))))
        if type_url == ENDPOINT_TYPE:
            return self._on_endpoints(version, nonce, names, markers)
        return Outcome()

    def _on_clusters(self, version: str, nonce: str, names: tuple[str, ...]) -> Outcome:
        self.cds_version = version
        ack = Request(CLUSTER_TYPE, version, nonce)
        if names == self.clusters:
            return Outcome((ack,))
        self.clusters = names
        self.received_clas &= set(names)
        # Like Envoy: the new EDS subscription goes out before the CDS ACK.
        subscribe = Request(ENDPOINT_TYPE, self.eds_version, "", names)
        if not self.eds_version:
            return Outcome((subscribe, ack))
        return Outcome((subscribe, ack), became_ready=self._check_ready())

    def _on_endpoints(
        self, version: str, nonce: str, names: Iterable[str], markers: Iterable[int]
    ) -> Outcome:
        self.eds_version = version
        self.received_clas.update(n for n in names if n in self.clusters)
        fresh = frozenset(markers) - self.seen_markers
        self.seen_markers |= fresh
        ack = Request(ENDPOINT_TYPE, version, nonce, self.clusters)
        return Outcome((ack,), became_ready=self._check_ready(), markers=fresh)

    def _check_ready(self) -> bool:
        """True once, when every subscribed cluster's CLA has been received."""
        if self.ready or not self.clusters or not self.received_clas >= set(self.clusters):
            return False
        self.ready = True
        return True


@dataclass(slots=True)
class Convergence:
    """Run-wide tallies: when each stream became ready and ACKed each armed change."""

    streams: int
    ready_count: int = 0
    first_ready: float | None = None
    last_ready: float | None = None
    acked: dict[int, int] = field(default_factory=dict)
    first_ack: dict[int, float] = field(default_factory=dict)
    last_ack: dict[int, float] = field(default_factory=dict)

    def stream_ready(self, now: float) -> bool:
        """Record one stream ready at `now`; True when this completes all streams."""
        self.ready_count += 1
        if self.first_ready is None:
            self.first_ready = now
        self.last_ready = now
        return self.ready_count == self.streams

    def arm(self, change: int) -> None:
        """Start counting ACKs of `change`."""
        self.acked.setdefault(change, 0)

    def change_acked(self, change: int, now: float) -> bool:
        """Record one stream's ACK of `change`; True when this completes all streams."""
        if change not in self.acked:
            return False
        self.acked[change] += 1
        self.first_ack.setdefault(change, now)
        self.last_ack[change] = now
        return self.acked[change] == self.streams
