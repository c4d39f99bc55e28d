"""Pure mapping of DNS answers to endpoints: ordering, dedupe, SRV weights and priorities.

SRV weights (RFC 2782, 0-65535) become endpoint weights, which Envoy and gRPC require to be at
least 1. Within one SRV priority:

- no weight is 0: the weights are used as they are;
- every weight is 0: every target gets weight 1 (RFC 2782: equal chance);
- some are 0: weight-0 targets get 1 and the others are multiplied by `ZERO_WEIGHT_SCALE`
  (100, lowered if the sum would exceed 2^32-1), so a weight-0 target keeps "a very small
  chance" of being picked (1/(100*w+1) against a weight-w target) instead of none.

Each address of a target carries the target's weight. Distinct SRV priorities, in ascending
order, become endpoint priorities 0, 1, 2, ... (lower = preferred); ranks beyond
`MAX_PRIORITY` share priority `MAX_PRIORITY`. An address reached through several SRV records
keeps the best priority, with the weights of its records at that priority summed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xdscp.dns.config import RefreshPolicy
from xdscp.model import MAX_PRIORITY, UINT32_MAX, Endpoint, Locality

ZERO_WEIGHT_SCALE = 100
_NO_LOCALITY = Locality()


@dataclass(frozen=True, slots=True, order=True)
class SrvRecord:
    """One SRV record; `target` is an absolute DNS name (`.` means "no service here")."""

    priority: int
    weight: int
    port: int
    target: str


def order_addresses(addresses: Iterable[str]) -> list[str]:
    """Normalised IP literals without duplicates, IPv4 first, each family in numeric order."""
    parsed = {ipaddress.ip_address(a) for a in addresses}
    return [str(ip) for ip in sorted(parsed, key=lambda ip: (ip.version, ip.packed))]


def clamp_interval(ttl: float, policy: RefreshPolicy) -> float:
    """Seconds until the next query after an answer with TTL `ttl`."""
    return min(max(float(ttl), policy.min_interval), policy.max_interval)


def srv_weights(weights: Sequence[int]) -> list[int]:
    """Endpoint weights (>= 1) for the SRV weights of one priority (see the module doc)."""
    zeros = sum(1 for w in weights if w == 0)
    if zeros == 0:
        return list(weights)
    if zeros == len(weights):
        return [1] * len(weights)
    total = sum(weights)
    scale = max(1, min(ZERO_WEIGHT_SCALE, (UINT32_MAX - zeros) // total))
    return [w * scale if w else 1 for w in weights]


def srv_priority_ranks(priorities: Iterable[int]) -> dict[int, int]:
    """SRV priority value -> endpoint priority (0 = preferred), capped at MAX_PRIORITY."""
    return {p: min(rank, MAX_PRIORITY) for rank, p in enumerate(sorted(set(priorities)))}


def address_endpoints(
    addresses: Iterable[str], port: int, weight: int = 1, locality: Locality = _NO_LOCALITY
) -> tuple[Endpoint, ...]:
    """One endpoint per distinct address, on `port`, in deterministic order."""
    return tuple(
        Endpoint(address=a, port=port, weight=weight, locality=locality)
        for a in order_addresses(addresses)
    )


def srv_endpoints(
    records: Iterable[SrvRecord],
    addresses: Mapping[str, Sequence[str]],
    locality: Locality = _NO_LOCALITY,
) -> tuple[Endpoint, ...]:
    """Endpoints for an SRV answer, given each target's resolved addresses.

    Targets missing from `addresses` (or with none) contribute nothing; so do the `.` target
    ("no service here", RFC 2782) and records with port 0. Priorities are ranked among the
    records that remain, so endpoint priorities are contiguous from 0 (gRPC rejects gaps).
    """
    usable = sorted(
        {r for r in records if r.target != "." and r.port != 0 and addresses.get(r.target)}
    )
    ranks = srv_priority_ranks(r.priority for r in usable)
    best: dict[tuple[str, int], tuple[int, int]] = {}
    for priority in sorted(ranks):
        group = [r for r in usable if r.priority == priority]
        for record, weight in zip(group, srv_weights([r.weight for r in group]), strict=True):
            rank = ranks[priority]
            for address in order_addresses(addresses.get(record.target, ())):
                key = (address, record.port)
                known = best.get(key)
                if known is None or known[0] > rank:
                    best[key] = (rank, weight)
                elif known[0] == rank:
                    best[key] = (rank, min(UINT32_MAX, known[1] + weight))
    # A duplicate address may leave a priority level empty: rank again so levels stay contiguous.
    final = {rank: i for i, rank in enumerate(sorted({rank for rank, _ in best.values()}))}
    endpoints = (
        Endpoint(address=a, port=port, weight=w, priority=final[rank], locality=locality)
        for (a, port), (rank, w) in best.items()
    )
    return tuple(sorted(endpoints, key=_order))


def _order(endpoint: Endpoint) -> tuple[int, int, bytes, int]:
    ip = ipaddress.ip_address(endpoint.address)
    return (endpoint.priority, ip.version, ip.packed, endpoint.port)
