"""Envoy's thread-aware hash balancers: RING_HASH and MAGLEV (thread_aware_lb_impl.cc).

One table per priority, built from the priority's healthy hosts (all hosts if the priority is
in panic) with weights normalized to sum to 1 — per locality when locality weighting is on. A
request's hash (or a random 64-bit value when it has none) chooses both the priority and the
host, so without a hash the pick is weighted random by table share.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdscp.balancer.base import PriorityBalancer
from xdscp.balancer.bounded import bounded_choice
from xdscp.balancer.hash.tables import MaglevTable, RingHashTable, WeightedKey, normalize_weights
from xdscp.balancer.hosts import UINT32_MAX, Host, HostSet
from xdscp.balancer.policy import Kind, LbSettings
from xdscp.balancer.priority import choose_priority
from xdscp.errors import BalancerError, ValidationError

Table = RingHashTable[Host] | MaglevTable[Host]


def host_key(host: Host, *, use_hostname: bool) -> str:
    """`envoy.lb/hash_key` metadata if non-empty, else the hostname if configured (and
    non-empty), else the address string."""
    if host.hash_key:
        return host.hash_key
    if use_hostname and host.hostname:
        return host.hostname
    return host.key


def _entries(hosts: Sequence[Host], use_hostname: bool) -> list[tuple[str, int, Host]]:
    total = 0
    for host in hosts:
        total += host.weight
        if total > UINT32_MAX:
            raise BalancerError(
                f"The sum of weights of all upstream hosts in a locality exceeds {UINT32_MAX}"
            )
    return [(host_key(h, use_hostname=use_hostname), h.weight, h) for h in hosts]


def normalized_hosts(
    host_set: HostSet, *, panic: bool, locality_weighted: bool, use_hostname: bool
) -> list[WeightedKey[Host]]:
    """Envoy's normalizeWeights for one priority, in Envoy's host order."""
    if not locality_weighted or not host_set.locality_weights:
        hosts = host_set.hosts if panic else host_set.healthy
        return normalize_weights(_entries(hosts, use_hostname)) if hosts else []
    groups = host_set.hosts_per_locality if panic else host_set.healthy_per_locality
    total = sum(host_set.locality_weights)
    if total > UINT32_MAX:
        raise BalancerError(
            f"The sum of weights of all localities at the same priority exceeds {UINT32_MAX}"
        )
    result: list[WeightedKey[Host]] = []
    if total == 0:
        return result
    for weight, group in zip(host_set.locality_weights, groups, strict=True):
        if weight and group:
            result.extend(
                normalize_weights(_entries(group, use_hostname), locality_share=weight / total)
            )
    return result


def build_table(hosts: Sequence[WeightedKey[Host]], settings: LbSettings) -> Table:
    """A ring or Maglev table over normalized hosts, per the cluster's settings."""
    try:
        if settings.kind is Kind.MAGLEV:
            return MaglevTable(hosts, table_size=settings.table_size)
        return RingHashTable(
            hosts,
            min_ring_size=settings.min_ring_size,
            max_ring_size=settings.max_ring_size,
            hash_function=settings.hash_function,
        )
    except ValidationError as error:
        raise BalancerError(str(error)) from error


class HashBalancer(PriorityBalancer):
    """RING_HASH / MAGLEV as Envoy runs them; deterministic once the request hash is known."""

    def _setup(self) -> None:
        settings = self.settings
        self.weighted_hosts: list[list[WeightedKey[Host]]] = [
            normalized_hosts(
                s,
                panic=self.load.panic[s.priority],
                locality_weighted=settings.locality_weighted,
                use_hostname=settings.use_hostname_for_hashing,
            )
            for s in self.host_sets
        ]
        self.tables: list[Table] = [build_table(w, settings) for w in self.weighted_hosts]

    def choose(self, hash_key: int | None = None) -> Host | None:
        """The host for request hash `hash_key` (a random 64-bit value when None)."""
        value = self.rand64() if hash_key is None else hash_key & 0xFFFFFFFFFFFFFFFF
        priority, _ = choose_priority(value, self.load)
        host = self.tables[priority].lookup(value)
        factor = self.settings.hash_balance_factor
        if host is None or factor is None:
            return host
        return bounded_choice(
            host,
            value,
            [(e.host, e.weight) for e in self.weighted_hosts[priority]],
            active=lambda h: h.active,
            overall_active=sum(h.active for h in self.hosts),
            factor=factor,
        )

    def table_shares(self, priority: int = 0) -> dict[Host, float]:
        """Share of the hash space each host owns in `priority`'s table."""
        hosts = self.weighted_hosts[priority]
        shares = self.tables[priority].shares(len(hosts))
        return {entry.host: share for entry, share in zip(hosts, shares, strict=True)}
