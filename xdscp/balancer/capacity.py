"""The weights `client_side_weighted_round_robin` clients converge to when each endpoint
reports utilization = rate / capacity: a client's weight rate / utilization is the capacity,
whatever share of the load the endpoint receives. `xdscp simulate --capacity` and the demo's
load-aware step predict with it.
"""

from __future__ import annotations

from dataclasses import replace

from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, ClientKind, LbPolicy, Locality, Service

_WEIGHT_SCALE = 10_000  # integer weights from the capacities' shares: 0.01 % steps


def converged_service(
    service: Service, capacity: dict[str, float], client: ClientKind = ClientKind.ENVOY
) -> Service:
    """`service` with the weights the clients converge to, as the weighted round robin they
    then run: Envoy weighs a priority's endpoints by their capacities; gRPC picks a locality by
    its weight (its endpoint count) and weighs its endpoints by their capacities."""
    keys = {e.key for e in service.endpoints}
    unknown = sorted(set(capacity) - keys)
    if unknown:
        raise ValidationError("capacity", f"{', '.join(unknown)}: not an endpoint of the service")
    missing = [e.key for e in service.endpoints if e.key not in capacity]
    if missing:
        raise ValidationError(
            "capacity", f"give every endpoint a capacity (IP:PORT=RPS); missing {missing}"
        )
    shares = _grpc_shares(service, capacity) if client is ClientKind.GRPC else capacity
    total = sum(shares.values())
    endpoints = tuple(
        replace(e, weight=max(1, round(_WEIGHT_SCALE * shares[e.key] / total)))
        for e in service.endpoints
    )
    policy = BalancingPolicy(
        lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
        overprovisioning_factor=service.policy.overprovisioning_factor,
        panic_threshold=service.policy.panic_threshold,
        locality_weighted=service.policy.locality_weighted,
    )
    return replace(service, endpoints=endpoints, policy=policy)


def _grpc_shares(service: Service, capacity: dict[str, float]) -> dict[str, float]:
    """Each endpoint's share in its priority under gRPC: its locality's weight (endpoint
    count) over the priority's, times its capacity over its locality's."""
    groups: dict[tuple[int, Locality], list[str]] = {}
    for e in service.endpoints:
        groups.setdefault((e.priority, e.locality), []).append(e.key)
    counts: dict[int, int] = {}
    for (priority, _), keys in groups.items():
        counts[priority] = counts.get(priority, 0) + len(keys)
    shares: dict[str, float] = {}
    for (priority, _), keys in groups.items():
        locality_total = sum(capacity[k] for k in keys)
        for key in keys:
            shares[key] = len(keys) / counts[priority] * capacity[key] / locality_total
    return shares
