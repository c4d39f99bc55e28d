"""Proxyless gRPC's balancing (gRFC A27, A42, A48): what a grpc channel does with the same
Cluster and ClusterLoadAssignment.

Differences from Envoy: endpoints with health other than HEALTHY/UNKNOWN and localities without
weight are dropped; no overprovisioning or panic — the first priority with endpoints takes all
requests; ROUND_ROBIN ignores endpoint weights and picks a locality at random weighted by
locality weight (wrr_locality → weighted_target), then rotates inside it; RING_HASH weighs each
endpoint by endpoint weight * locality weight and caps the ring at 4096 entries.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from itertools import accumulate
from typing import Any

from xdscp.balancer.base import Balancer
from xdscp.balancer.consistent import host_key
from xdscp.balancer.hash.tables import RingHashTable, WeightedKey
from xdscp.balancer.hosts import Host, host_sets, hosts_from_cla
from xdscp.balancer.policy import GRPC_RING_CAP, Kind, LbSettings
from xdscp.errors import BalancerError
from xdscp.model import HashFunction


def check_priorities(cla: Any) -> None:
    """grpc rejects a CLA whose priorities are not 0..N without gaps (localities without
    weight are dropped first, so a priority holding only those counts as missing)."""
    priorities = {
        int(group.priority) for group in cla.endpoints if group.HasField("load_balancing_weight")
    }
    if priorities and priorities != set(range(max(priorities) + 1)):
        raise BalancerError(
            "errors validating ClusterLoadAssignment resource: "
            "[field:endpoints error:sparse priority list]"
        )


def _by_locality(hosts: Sequence[Host]) -> list[list[Host]]:
    """Hosts grouped by locality, localities sorted (grpc keeps them in a sorted map)."""
    groups: dict[Any, list[Host]] = {}
    for host in hosts:
        groups.setdefault(host.locality, []).append(host)
    return [groups[loc] for loc in sorted(groups)]


class _RoundRobin:
    """grpc round_robin over one list: rotation from a random start index."""

    __slots__ = ("hosts", "index")

    def __init__(self, hosts: list[Host], start: int) -> None:
        self.hosts = hosts
        self.index = start

    def pick(self) -> Host:
        index = self.index
        self.index = index + 1
        return self.hosts[index % len(self.hosts)]


class GrpcBalancer(Balancer):
    """The balancing a proxyless grpc client does for one cluster."""

    def __init__(
        self,
        cla: Any,
        settings: LbSettings,
        rng: random.Random,
        *,
        ejected: frozenset[str] = frozenset(),
    ) -> None:
        check_priorities(cla)
        hosts = [h for h in hosts_from_cla(cla, grpc=True) if h.key not in ejected]
        super().__init__(hosts, settings, rng)
        sets = [s for s in host_sets(hosts) if s.hosts]
        self.active_hosts: list[Host] = sets[0].hosts if sets else []
        self.priority = sets[0].priority if sets else None
        groups = _by_locality(self.active_hosts)
        self._ordered = [h for g in groups for h in g]
        self._pickers = [_RoundRobin(g, rng.randrange(len(g))) for g in groups]
        self._cumulative = list(accumulate(g[0].locality_weight for g in groups))
        self._flat = _RoundRobin(self.active_hosts, rng.randrange(len(self.active_hosts) or 1))
        self.weighted_hosts: list[WeightedKey[Host]] = []
        self.table: RingHashTable[Host] | None = None
        if settings.kind is Kind.RING_HASH:
            self._build_ring()

    def _build_ring(self) -> None:
        weights = [h.weight * h.locality_weight for h in self._ordered]
        total = sum(weights)
        self.weighted_hosts = [
            WeightedKey(host_key(h, use_hostname=False), w / total, h)
            for h, w in zip(self._ordered, weights, strict=True)
        ]
        self.settings = replace(
            self.settings,
            min_ring_size=min(self.settings.min_ring_size, GRPC_RING_CAP),
            max_ring_size=min(self.settings.max_ring_size, GRPC_RING_CAP),
        )
        self.table = RingHashTable(
            self.weighted_hosts,
            min_ring_size=self.settings.min_ring_size,
            max_ring_size=self.settings.max_ring_size,
            hash_function=HashFunction.XX_HASH,
        )

    def usable_hash_policies(self, policies: Sequence[Any]) -> Sequence[Any]:
        """gRPC hashes on request headers only (and its channel id, which has no meaning
        here): cookie, source IP and query parameter policies are ignored."""
        return [p for p in policies if p.WhichOneof("policy_specifier") == "header"]

    def choose(self, hash_key: int | None = None) -> Host | None:
        """The endpoint for one RPC (hash_key is used by ring_hash only)."""
        if not self.active_hosts:
            return None
        kind = self.settings.kind
        if kind is Kind.RING_HASH and self.table is not None:
            value = self.rand64() if hash_key is None else hash_key & 0xFFFFFFFFFFFFFFFF
            return self.table.lookup(value)
        if kind is Kind.PICK_FIRST:
            return self.active_hosts[0]
        if not self.settings.wrr_locality:
            return self._flat.pick()
        key = self._rng.randrange(self._cumulative[-1])
        return self._pickers[bisect_right(self._cumulative, key)].pick()

    def table_shares(self) -> dict[Host, float]:
        """Share of the hash space each endpoint owns on the ring (ring_hash only)."""
        if self.table is None:
            return {}
        shares = self.table.shares(len(self.weighted_hosts))
        return {e.host: s for e, s in zip(self.weighted_hosts, shares, strict=True)}
