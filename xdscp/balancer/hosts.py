"""Hosts and per-priority host sets, built from a ClusterLoadAssignment as Envoy builds them.

Envoy keeps, per priority, every host in CLA order (`hosts`), the healthy / degraded / excluded
subsets in the same order, and the same four lists grouped by locality, localities sorted by
(region, zone, sub_zone). Excluded (DRAINING) hosts stay in `hosts`: they only leave the
denominators of the availability arithmetic, exactly as in Envoy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xdscp.errors import BalancerError
from xdscp.model import Health, Locality, format_host_port

UINT32_MAX = 0xFFFFFFFF
_NO_LOCALITY = Locality()

# envoy.config.core.v3.HealthStatus values
_UNKNOWN, _HEALTHY, _UNHEALTHY, _DRAINING, _TIMEOUT, _DEGRADED = range(6)
_ENVOY_HEALTH = {
    _UNKNOWN: Health.HEALTHY,
    _HEALTHY: Health.HEALTHY,
    _UNHEALTHY: Health.UNHEALTHY,
    _TIMEOUT: Health.UNHEALTHY,
    _DEGRADED: Health.DEGRADED,
    _DRAINING: Health.DRAINING,
}


class Host:
    """One upstream host as a balancer sees it; `str(host)` is its `ip:port`.

    `active` counts requests started and not finished (least request reads it).
    """

    __slots__ = (
        "active",
        "address",
        "age",
        "hash_key",
        "health",
        "hostname",
        "locality",
        "locality_weight",
        "port",
        "priority",
        "weight",
    )

    def __init__(
        self,
        address: str,
        port: int,
        *,
        weight: int = 1,
        health: Health = Health.HEALTHY,
        locality: Locality = _NO_LOCALITY,
        locality_weight: int = 0,
        priority: int = 0,
        hostname: str = "",
        hash_key: str = "",
    ) -> None:
        self.address = address
        self.port = port
        self.weight = weight
        self.health = health
        self.locality = locality
        self.locality_weight = locality_weight
        self.priority = priority
        self.hostname = hostname
        self.hash_key = hash_key
        self.active = 0
        self.age: float | None = None  # seconds since it joined (slow start); None: long ago

    @property
    def key(self) -> str:
        """The address string Envoy prints and hashes: `ip:port`, `[v6]:port`."""
        return format_host_port(self.address, self.port)

    def __str__(self) -> str:
        return self.key

    def __repr__(self) -> str:
        return f"Host({self.key}, weight={self.weight}, {self.health}, p{self.priority})"


@dataclass(slots=True)
class HostSet:
    """The hosts of one priority, with the subsets and per-locality groupings Envoy keeps."""

    priority: int
    hosts: list[Host] = field(default_factory=list)
    healthy: list[Host] = field(default_factory=list)
    degraded: list[Host] = field(default_factory=list)
    excluded: list[Host] = field(default_factory=list)
    localities: list[Locality] = field(default_factory=list)
    hosts_per_locality: list[list[Host]] = field(default_factory=list)
    healthy_per_locality: list[list[Host]] = field(default_factory=list)
    degraded_per_locality: list[list[Host]] = field(default_factory=list)
    excluded_per_locality: list[list[Host]] = field(default_factory=list)
    locality_weights: list[int] = field(default_factory=list)

    def finish(self) -> None:
        """Derive the subsets and the locality groupings from `hosts`."""
        self.healthy = [h for h in self.hosts if h.health is Health.HEALTHY]
        self.degraded = [h for h in self.hosts if h.health is Health.DEGRADED]
        self.excluded = [h for h in self.hosts if h.health is Health.DRAINING]
        self.localities = sorted({h.locality for h in self.hosts})
        index = {loc: i for i, loc in enumerate(self.localities)}
        groups: list[list[Host]] = [[] for _ in self.localities]
        weights = [0] * len(self.localities)
        for host in self.hosts:
            groups[index[host.locality]].append(host)
            weights[index[host.locality]] = host.locality_weight
        self.hosts_per_locality = groups
        self.healthy_per_locality = [_only(g, Health.HEALTHY) for g in groups]
        self.degraded_per_locality = [_only(g, Health.DEGRADED) for g in groups]
        self.excluded_per_locality = [_only(g, Health.DRAINING) for g in groups]
        self.locality_weights = weights

    @property
    def available_count(self) -> int:
        """`|hosts| - |excluded|`, the denominator of Envoy's availability arithmetic."""
        return len(self.hosts) - len(self.excluded)


def _only(hosts: Iterable[Host], health: Health) -> list[Host]:
    return [h for h in hosts if h.health is health]


def _locality(proto: Any) -> Locality:
    return Locality(proto.region, proto.zone, proto.sub_zone)


def _ip(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise BalancerError(f"{where}: malformed IP address: {text}") from None


def _hash_key(lb_endpoint: Any) -> str:
    fields = lb_endpoint.metadata.filter_metadata.get("envoy.lb")
    if fields is None or "hash_key" not in fields.fields:
        return ""
    value = fields.fields["hash_key"]
    return str(value.string_value) if value.WhichOneof("kind") == "string_value" else ""


def _endpoint_weight(lb_endpoint: Any, where: str) -> int:
    if not lb_endpoint.HasField("load_balancing_weight"):
        return 1
    weight = int(lb_endpoint.load_balancing_weight.value)
    if weight < 1:
        raise BalancerError(
            f"{where}.load_balancing_weight: value must be greater than or equal to 1, got 0"
        )
    return weight


def _locality_weight(locality_endpoints: Any, where: str) -> int | None:
    if not locality_endpoints.HasField("load_balancing_weight"):
        return None
    weight = int(locality_endpoints.load_balancing_weight.value)
    if weight < 1:
        raise BalancerError(
            f"{where}.load_balancing_weight: value must be greater than or equal to 1, got 0"
        )
    return weight


def hosts_from_cla(cla: Any, *, grpc: bool = False) -> list[Host]:
    """Every host of the CLA in CLA order, validated as the client validates them.

    Envoy: health UNKNOWN/HEALTHY healthy, UNHEALTHY/TIMEOUT unhealthy, DEGRADED degraded,
    DRAINING excluded; a locality without weight has weight 0. gRPC (`grpc=True`): only
    HEALTHY/UNKNOWN endpoints are kept and a locality without weight is dropped.
    """
    hosts: list[Host] = []
    for i, group in enumerate(cla.endpoints):
        where = f"endpoints[{i}]"
        locality_weight = _locality_weight(group, where)
        if grpc and locality_weight is None:
            continue
        locality = _locality(group.locality)
        for j, lb_endpoint in enumerate(group.lb_endpoints):
            host = _host(lb_endpoint, f"{where}.lb_endpoints[{j}]", locality, group.priority)
            host.locality_weight = locality_weight or 0
            if grpc and host.health is not Health.HEALTHY:
                continue
            hosts.append(host)
    return hosts


def _host(lb_endpoint: Any, where: str, locality: Locality, priority: int) -> Host:
    socket = lb_endpoint.endpoint.address.socket_address
    if not lb_endpoint.endpoint.address.HasField("socket_address"):
        raise BalancerError(f"{where}.endpoint.address: a socket address is required")
    status = int(lb_endpoint.health_status)
    if status not in _ENVOY_HEALTH:
        raise BalancerError(f"{where}.health_status: unknown value {status}")
    return Host(
        _ip(socket.address, f"{where}.endpoint.address"),
        int(socket.port_value),
        weight=_endpoint_weight(lb_endpoint, where),
        health=_ENVOY_HEALTH[status],
        locality=locality,
        priority=int(priority),
        hostname=str(lb_endpoint.endpoint.hostname),
        hash_key=_hash_key(lb_endpoint),
    )


def apply_conditions(
    hosts: Sequence[Host], *, ejected: Collection[str] = (), ages: Mapping[str, float] | None = None
) -> None:
    """Mark outlier-ejected hosts (`ip:port`) unhealthy, as Envoy's FAILED_OUTLIER_CHECK does
    (they stay in the priority's hosts: too many of them and the priority is in panic), and
    give hosts their age in seconds (slow start). Excluded (DRAINING) hosts stay excluded."""
    for host in hosts:
        if host.key in ejected and host.health is not Health.DRAINING:
            host.health = Health.UNHEALTHY
        if ages is not None and host.key in ages:
            host.age = ages[host.key]


def host_sets(hosts: Sequence[Host]) -> list[HostSet]:
    """Group hosts into one `HostSet` per priority 0..max (gaps stay empty, as in Envoy)."""
    top = max((h.priority for h in hosts), default=0)
    sets = [HostSet(priority=p) for p in range(top + 1)]
    for host in hosts:
        sets[host.priority].hosts.append(host)
    for host_set in sets:
        host_set.finish()
    return sets


def overprovisioning_factor(cla: Any) -> int:
    """`policy.overprovisioning_factor`, 140 when unset."""
    if cla.HasField("policy") and cla.policy.HasField("overprovisioning_factor"):
        return int(cla.policy.overprovisioning_factor.value)
    return 140
