"""Run a balancer over synthetic requests and measure what a client would do.

`simulate` sends N requests through the balancer a client builds for a service's Cluster and
CLA and counts each endpoint's share. Requests of hash-based policies carry distinct synthetic
clients (a header / cookie / query value or source IP per request, per the service's
`hash_on`), hashed exactly as Envoy hashes them. `remap_fractions` measures how many request
hashes land on another endpoint when one endpoint is added or removed, for the service's policy
and for the classic `hash(ip) mod n`. `sequential_picks` counts a built balancer's picks over
requests sent one after another.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from xdscp.balancer.base import Balancer
from xdscp.balancer.build import build_balancer
from xdscp.balancer.hash.modulo import ModuloTable, sample_hashes
from xdscp.balancer.hosts import Host
from xdscp.model import ClientKind, Endpoint, HashInput, HashOn, Service

Resources = Callable[[Service], tuple[Any, Any]]
"""Builds the (Cluster, ClusterLoadAssignment) a client receives for a service."""


@dataclass(frozen=True, slots=True)
class EndpointShare:
    """One endpoint's outcome: requests received, their share, and its weight share."""

    key: str
    requests: int
    share: float
    weight_share: float


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Per-endpoint shares (service order) plus requests no endpoint could take."""

    endpoints: tuple[EndpointShare, ...]
    unserved: int
    requests: int


def synthetic_request(hash_on: Sequence[HashOn], index: int) -> dict[str, Any]:
    """Keyword arguments for `Balancer.request_hash` describing client number `index`."""
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    query: dict[str, str] = {}
    source_ip = str(ipaddress.IPv4Address(0x0A000000 + index % 0xFFFFFF))  # 10.x.y.z clients
    for item in hash_on:
        if item.source is HashInput.HEADER:
            headers[item.name] = f"user-{index}"
        elif item.source is HashInput.COOKIE:
            cookies[item.name] = f"session-{index}"
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        elif item.source is HashInput.QUERY_PARAMETER:
            query[item.name] = f"q{index}"
    return {"headers": headers, "cookies": cookies, "query": query, "source_ip": source_ip}


def weight_shares(endpoints: Sequence[Endpoint]) -> dict[str, float]:
    """Each endpoint's weight over the total weight of the highest-priority level (lowest
    number); endpoints of other priorities get 0."""
    if not endpoints:
        return {}
    top = min(e.priority for e in endpoints)
    total = sum(e.weight for e in endpoints if e.priority == top)
    return {e.key: (e.weight / total if e.priority == top else 0.0) for e in endpoints}


def _pick(lb: Balancer, service: Service, index: int, route_policies: Sequence[Any]) -> object:
    if service.policy.is_hashing and service.policy.hash_on:
        request = synthetic_request(service.policy.hash_on, index)
        return lb.choose(lb.request_hash(**request, route_policies=route_policies))
    return lb.choose()


def simulate(
    service: Service,
    resources: Resources,
    *,
    requests: int,
    client: ClientKind = ClientKind.ENVOY,
    seed: int | None = None,
    route_policies: Sequence[Any] = (),
    conditions: Conditions | None = None,
) -> SimulationResult:
    """Send `requests` requests through the balancer `client` builds for `service`.

    `route_policies` are the route's hash policies (where gRPC clients take them from);
    `conditions` the ejected hosts and host ages the balancer is built with."""
    lb = _balancer(service, resources, client, seed, conditions)
    seen: Counter[str] = Counter()
    unserved = 0
    for index in range(requests):
        host = _pick(lb, service, index, route_policies)
        if host is None:
            unserved += 1
        else:
            seen[str(host)] += 1
    weights = weight_shares(service.endpoints)
    shares = tuple(
        EndpointShare(
            e.key, seen[e.key], seen[e.key] / requests if requests else 0.0, weights[e.key]
        )
        for e in service.endpoints
    )
    return SimulationResult(shares, unserved, requests)


def sequential_picks(
    lb: Balancer,
    picks: int,
    name_of: Callable[[Host], str] = str,
    hash_key: int | None = None,
) -> Counter[str]:
    """`picks` requests one after another (each finished before the next starts, so least
    request sees no load): how many went to each host, by `name_of` (`ip:port` by default),
    and under `"none"` those no host could take."""
    seen: Counter[str] = Counter()
    for _ in range(picks):
        host = lb.choose(hash_key)
        if host is None:
            seen["none"] += 1
            continue
        lb.start(host)
        seen[name_of(host)] += 1
        lb.finish(host)
    return seen


@dataclass(frozen=True, slots=True)
class RequestRoute:
    """Where one request goes under a hash policy: its hash and the endpoint it reaches.

    `hash` is None when nothing in the request hashes (Envoy then picks as if at random),
    and `endpoint` is None then, or when no endpoint can take the request."""

    hash: int | None
    endpoint: str | None


def route_request(
    lb: Balancer,
    *,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    source_ip: str | None = None,
    route_policies: Sequence[Any] = (),
) -> RequestRoute:
    """The endpoint a request with these headers / cookies / query / source IP reaches
    under `lb`'s hash policy (the request hash `simulate` uses). Hash balancers do not
    change as they pick, so one `lb` can answer many requests."""
    digest = lb.request_hash(
        headers=headers,
        cookies=cookies,
        query=query,
        source_ip=source_ip,
        route_policies=route_policies,
    )
    if digest is None:
        return RequestRoute(None, None)
    host = lb.choose(digest)
    return RequestRoute(digest, None if host is None else str(host))


@dataclass(frozen=True, slots=True)
class Conditions:
    """What changes a pick besides the resources: ejected hosts (`ip:port`) and each host's
    seconds since it joined (slow start)."""

    ejected: frozenset[str] = frozenset()
    ages: Mapping[str, float] | None = None


def _balancer(
    service: Service,
    resources: Resources,
    client: ClientKind,
    seed: int | None,
    conditions: Conditions | None,
) -> Balancer:
    cluster, cla = resources(service)
    conditions = conditions or Conditions()
    return build_balancer(
        cluster, cla, client=client, rng=random.Random(seed),
        ejected=conditions.ejected, ages=conditions.ages,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class HotKeyResult:
    """Requests for one key held `concurrency` at a time: where they went, and the most
    requests each endpoint held at once."""

    requests: Mapping[str, int]
    peak_active: Mapping[str, int]
    unserved: int


def _keyed_request(hash_on: Sequence[HashOn], key: str) -> dict[str, Any]:
    """`Balancer.request_hash` arguments with every hash input set to `key` (the source IP
    too, when `key` is an IP address)."""
    names = {source: {h.name: key for h in hash_on if h.source is source} for source in HashInput}
    cookies = names[HashInput.COOKIE]
    headers = names[HashInput.HEADER] | (
        {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    )
    try:
        source_ip: str | None = str(ipaddress.ip_address(key))
    except ValueError:
        source_ip = None
    return {
        "headers": headers,
        "cookies": cookies,
        "query": names[HashInput.QUERY_PARAMETER],
        "source_ip": source_ip,
    }


def simulate_hot_key(
    service: Service,
    resources: Resources,
    *,
    key: str,
    concurrency: int,
    requests: int,
    client: ClientKind = ClientKind.ENVOY,
    seed: int | None = None,
    route_policies: Sequence[Any] = (),
    conditions: Conditions | None = None,
) -> HotKeyResult:
    """Send `requests` requests that all hash `key` (every hash input set to it), keeping
    `concurrency` in flight (the oldest finishes before the next starts): with a
    `hash_balance_factor` the overflow leaves the key's endpoint, as Envoy bounds it."""
    lb = _balancer(service, resources, client, seed, conditions)
    value = lb.request_hash(
        **_keyed_request(service.policy.hash_on, key), route_policies=route_policies
    )
    seen: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    flight: deque[Any] = deque()
    unserved = 0
    for _ in range(requests):
        if len(flight) >= concurrency:
            lb.finish(flight.popleft())
        host = lb.choose(value)
        if host is None:
            unserved += 1
            continue
        lb.start(host)
        flight.append(host)
        seen[str(host)] += 1
        peak[str(host)] = max(peak[str(host)], host.active)
    return HotKeyResult(dict(seen), dict(peak), unserved)


def _added_endpoint(endpoints: Sequence[Endpoint]) -> Endpoint:
    """A new endpoint like the last one, on the next free address."""
    last = endpoints[-1]
    taken = {e.address for e in endpoints}
    candidate = ipaddress.ip_address(last.address) + 1
    while str(candidate) in taken:
        candidate += 1
    return replace(last, address=str(candidate))


def _fraction_moved(
    before: Callable[[int], str], after: Callable[[int], str], hashes: Sequence[int]
) -> float:
    return sum(1 for h in hashes if before(h) != after(h)) / len(hashes)


def remap_fractions(
    service: Service,
    resources: Resources,
    *,
    client: ClientKind = ClientKind.ENVOY,
    samples: int = 20_000,
) -> Mapping[str, tuple[float, float]]:
    """Fraction of request hashes that change endpoint when one endpoint is added / removed.

    Keys: "policy" (the service's balancer, compared by hash) and "modulo" (`hash mod n`).
    Needs at least two endpoints.
    """
    hashes = sample_hashes(samples)
    base = list(service.endpoints)
    grown = [*base, _added_endpoint(base)]
    shrunk = base[:-1]

    def picker(endpoints: Sequence[Endpoint]) -> Callable[[int], str]:
        cluster, cla = resources(replace(service, endpoints=tuple(endpoints)))
        lb = build_balancer(cluster, cla, client=client, rng=random.Random(0))
        return lambda h: str(lb.choose(h))

    def modulo(endpoints: Sequence[Endpoint]) -> Callable[[int], str]:
        table = ModuloTable([e.key for e in endpoints])
        return lambda h: str(table.lookup(h))

    result = {}
    for name, build in (("policy", picker), ("modulo", modulo)):
        now = build(base)
        result[name] = (
            _fraction_moved(now, build(grown), hashes),
            _fraction_moved(now, build(shrunk), hashes),
        )
    return result
