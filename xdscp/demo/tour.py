"""The strategy tour: for each balancing policy, set it in etcd, wait until Envoy has accepted
what xdscp serves for it, send traffic through Envoy and compare with the reference balancer.

The prediction is made on the very resources xdscp serves: the service is read back from
etcd with the registry source's own code and translated with xdscp's translation; the
Cluster and ClusterLoadAssignment bytes' versions (content hashes) must equal the versions
xdscp's admin endpoint reports and Envoy has ACKed before any request is sent, and the
reference balancer is built from those very bytes.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, message_factory

from xdscp.balancer import Balancer, build_balancer, sequential_picks
from xdscp.cache import Resource, TypeUrl, short_name
from xdscp.demo.admin import AdminClient
from xdscp.demo.stack import problem
from xdscp.demo.traffic import USER_HEADER, Request, plan, send
from xdscp.errors import ProcessError
from xdscp.etcd import EtcdClient, WatchEvent, WatchEventType
from xdscp.model import BalancingPolicy, HashOn, LbPolicy, Service
from xdscp.registry import Registered, RegistryLayout, RegistryState, set_policy
from xdscp.translate import TranslateOptions, envoy_service_resources

REFERENCE_PICKS = 20_000
REFERENCE_SEED = 20261130
SIGMAS = 5.0
ROTATION_SLACK = 1.5  # requests: a rotation's start position shifts counts by at most one
SYNC_TIMEOUT_S = 15.0
_USER = HashOn.parse(f"header:{USER_HEADER}")

STRATEGIES: tuple[BalancingPolicy, ...] = (
    BalancingPolicy(lb=LbPolicy.ROUND_ROBIN),
    BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN),
    BalancingPolicy(lb=LbPolicy.RANDOM),
    BalancingPolicy(lb=LbPolicy.WEIGHTED_RANDOM),
    BalancingPolicy(lb=LbPolicy.LEAST_REQUEST),
    BalancingPolicy(lb=LbPolicy.RING_HASH, hash_on=(_USER,)),
    BalancingPolicy(lb=LbPolicy.MAGLEV, hash_on=(_USER,)),
    BalancingPolicy(lb=LbPolicy.SOURCE_IP_HASH),
)


def describe(policy: BalancingPolicy) -> str:
    """`maglev (hash on header:x-user)`, or just the policy name."""
    if not policy.hash_on:
        return str(policy.lb)
    return f"{policy.lb} (hash on {', '.join(str(h) for h in policy.hash_on)})"


@dataclass(frozen=True, slots=True)
class BackendRow:
    """One backend's outcome under one policy."""

    name: str
    endpoint: str
    weight: int
    measured: int
    predicted: float  # share of requests


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy did: per-backend counts against the prediction, and the verdict.

    `on_predicted` (hash policies) counts requests answered by the backend predicted for that
    very request; `bound` is the largest allowed |measured - requests * predicted| per backend.
    """

    policy: BalancingPolicy
    requests: int
    rows: tuple[BackendRow, ...]
    errors: int
    on_predicted: int | None
    bound: float
    rule: str
    sync_seconds: float

    @property
    def ok(self) -> bool:
        """Every request answered, and within the bound of the prediction."""
        if self.errors:
            return False
        if self.on_predicted is not None:
            return self.on_predicted == self.requests
        return all(abs(r.measured - self.requests * r.predicted) <= self.bound for r in self.rows)


async def read_service(client: EtcdClient, name: str, layout: RegistryLayout) -> Service:
    """`name` as xdscp's etcd source builds it from what etcd holds now."""
    state = RegistryState(layout)
    for prefix, apply in (
        (layout.services_prefix, state.apply_native),
        (layout.policies_prefix, state.apply_policies),
    ):
        kvs, _ = await client.get_prefix(prefix.encode())
        apply([WatchEvent(WatchEventType.PUT, kv.key, kv.value, kv.mod_revision) for kv in kvs])
    services, _ = state.build(lambda _host: None)
    if name not in services:
        raise ProcessError(f"{name} has no registration in etcd")
    return services[name]


def _node_synced(
    node: Mapping[str, Any], resources: Any, snapshots: Any, expected: Mapping[str, str], name: str
) -> bool:
    """The node's group serves `expected` for service `name`, and the node has ACKed the
    group's current version of each of those types."""
    served = resources.get(node["group"], {})
    versions = snapshots.get(node["group"], {})
    return all(
        served.get(kind, {}).get(name) == version
        and node["types"].get(kind, {}).get("acked_version") == versions.get(kind)
        for kind, version in expected.items()
    )


async def _accepted(
    admin: AdminClient, service: str, expected: Mapping[str, str], hosts: set[str]
) -> bool:
    """One look at `wait_accepted`'s condition."""
    resources, snapshots, nodes = await admin.state()
    envoys = [n for n in nodes if n["client"] == "envoy"]
    if not envoys or not all(
        _node_synced(n, resources, snapshots, expected, service) for n in envoys
    ):
        return False
    group = envoys[0]["group"]
    # Envoy's cluster carries the response's version over state of the world and the
    # resource's own version over delta xDS.
    versions = {snapshots[group]["Cluster"], resources[group]["Cluster"][service]}
    if not any([await admin.envoy_cluster_active(service, v) for v in versions]):
        return False
    return await admin.envoy_hosts(service) == hosts


async def wait_accepted(
    admin: AdminClient,
    service: Service,
    expected: Mapping[str, str],
    timeout_s: float,
) -> float:
    """Wait until xdscp serves `expected` (type → version of `service`'s resources), every
    Envoy has ACKed it, Envoy's cluster is active (not warming) and holds exactly the
    service's endpoints (per Envoy's /clusters); the seconds it took."""
    hosts = {e.key for e in service.endpoints}
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await _accepted(admin, service.name, expected, hosts):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    held = await admin.envoy_hosts(service.name)
    raise ProcessError(
        problem(
            f"Envoy did not accept the new resources of {service.name!r} within"
            f" {timeout_s:.0f} s (it holds {sorted(held)}, expected {sorted(hosts)})",
            "a NACK, or an Envoy or control plane too slow to answer",
            f"look at `last_nack` in http://127.0.0.1:{admin.xdscp_port}/debug/nodes",
        )
    )


def predict_each(lb: Balancer, requests: Sequence[Request]) -> list[str]:
    """The endpoint (`ip:port`) the reference picks for each request (hash policies)."""
    picks = []
    for request in requests:
        key = lb.request_hash(headers=dict(request.headers), source_ip=request.source_ip)
        picks.append(str(lb.choose(key)))
    return picks


def predict_shares(lb: Balancer, picks: int = REFERENCE_PICKS) -> Counter[str]:
    """Endpoint → picks over `picks` sequential requests (each finishes before the next)."""
    return sequential_picks(lb, picks)


def _bound(
    policy: BalancingPolicy, requests: int, shares: Mapping[str, float]
) -> tuple[float, str]:
    if policy.lb in (LbPolicy.ROUND_ROBIN, LbPolicy.WEIGHTED_ROUND_ROBIN):
        return ROTATION_SLACK, f"each backend within ±{ROTATION_SLACK:g} requests (a rotation)"
    inflation = 1.0 + requests / REFERENCE_PICKS  # the prediction is itself an estimate
    widest = max(
        (SIGMAS * math.sqrt(requests * p * (1 - p) * inflation) for p in shares.values()),
        default=0.0,
    )
    return widest, f"each backend within {SIGMAS:g} sigma (±{widest:.0f} requests)"


@dataclass(frozen=True)
class TourSetup:
    """What the tour talks to and what it sends."""

    etcd: EtcdClient
    admin: AdminClient
    service: str
    listener_port: int
    translate: TranslateOptions
    layout: RegistryLayout
    names: Mapping[str, str]  # endpoint `ip:port` → backend name
    requests: int
    registered: Mapping[str, Registered] = field(default_factory=dict)  # endpoint → its own


def unpack(resource: Resource) -> Any:
    """The protobuf message inside a served resource's `Any` bytes."""
    wrapped = any_pb2.Any.FromString(resource.any_bytes)
    descriptor = descriptor_pool.Default().FindMessageTypeByName(wrapped.TypeName())
    message = message_factory.GetMessageClass(descriptor)()
    wrapped.Unpack(message)
    return message


@dataclass(frozen=True, slots=True)
class Applied:
    """A policy as Envoy holds it: the service, the Cluster and CLA bytes xdscp serves for
    it, and how long Envoy took to ACK them."""

    service: Service
    resources: tuple[Resource, ...]
    seconds: float

    def reference(self) -> Balancer:
        """The reference balancer built from those very bytes."""
        by_type = {r.type_url: unpack(r) for r in self.resources}
        cluster, cla = by_type[TypeUrl.CLUSTER], by_type[TypeUrl.ENDPOINT]
        return build_balancer(cluster, cla, rng=random.Random(REFERENCE_SEED))


async def wait_registered(setup: TourSetup, timeout_s: float) -> Service:
    """The service as etcd holds it once every running backend is registered in it: a
    registration that lapsed (its lease lost, the registrar writing it again) is waited for,
    never toured without. ProcessError naming the missing backends after `timeout_s`."""
    started = time.monotonic()
    while True:
        try:
            service = await read_service(setup.etcd, setup.service, setup.layout)
            held = {e.key for e in service.endpoints}
        except ProcessError:  # no registration at all (yet)
            held = set()
        missing = sorted(setup.names[k] for k in set(setup.names) - held)
        if not missing:
            return service
        if time.monotonic() - started >= timeout_s:
            raise ProcessError(
                problem(
                    f"backends {', '.join(missing)} are running but not registered in etcd",
                    f"their registration was not (re)written within {timeout_s:.0f} s",
                    "see the registrar's warnings above (etcd_keepalive_failed, registration_*)",
                )
            )
        await asyncio.sleep(0.05)


async def wait_listener(admin: AdminClient, port: int, timeout_s: float = SYNC_TIMEOUT_S) -> None:
    """Wait until Envoy listens on the port xdscp gave it (per Envoy's admin); a rejected
    listener (a NACK, such as a port taken meanwhile) fails at once with Envoy's reason."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if port in await admin.envoy_listener_ports():
            return
        _, _, nodes = await admin.state()
        for node in nodes:
            nack = node["last_nack"].get("Listener")
            if nack:
                raise ProcessError(
                    problem(
                        f"Envoy could not open its listener on 127.0.0.1:{port}",
                        f"Envoy rejected it: {str(nack['error']).strip()}",
                        "choose another port with --listener-port (0 picks a free one)",
                    )
                )
        await asyncio.sleep(0.05)
    raise ProcessError(
        problem(
            f"Envoy did not open its listener on 127.0.0.1:{port} in {timeout_s:.0f} s",
            "xdscp's listener did not reach Envoy, or Envoy is stuck",
            "see xdscp's /debug/nodes and Envoy's log in the demo's work directory",
        )
    )


async def apply_policy(setup: TourSetup, policy: BalancingPolicy) -> Applied:
    """Write `policy` to etcd as `xdscp policy set` does, and wait until etcd holds every
    running backend's registration and Envoy has ACKed the resources xdscp serves for them
    (their content-hash versions are checked) and balances over every one of them."""
    await set_policy(setup.etcd, setup.service, policy, setup.layout.policies_prefix)
    service = await wait_registered(setup, SYNC_TIMEOUT_S)
    built = envoy_service_resources(service, setup.translate)
    expected = {short_name(r.type_url): r.version for r in built}
    waited = await wait_accepted(setup.admin, service, expected, SYNC_TIMEOUT_S)
    return Applied(service, built, waited)


async def run_policy(setup: TourSetup, policy: BalancingPolicy) -> Outcome:
    """Set `policy`, wait for Envoy to accept it, send traffic, compare with the reference."""
    applied = await apply_policy(setup, policy)
    requests = plan(policy, setup.requests)
    answers = await send_through_envoy(setup, requests)
    return _outcome(setup, applied, requests=requests, answers=answers)


async def send_through_envoy(setup: TourSetup, requests: list[Request]) -> list[str]:
    """`requests` through the demo's Envoy, off the loop: the backend that answered each; a
    failure to reach Envoy is a `ProcessError` saying where to look."""
    try:
        return await asyncio.to_thread(send, setup.listener_port, setup.service, requests)
    except OSError as exc:
        raise ProcessError(
            problem(
                f"requests through Envoy (127.0.0.1:{setup.listener_port}) failed",
                str(exc),
                "see Envoy's log in the demo's work directory",
            )
        ) from None


def _outcome(
    setup: TourSetup, applied: Applied, *, requests: Sequence[Request], answers: Sequence[str]
) -> Outcome:
    service, lb = applied.service, applied.reference()
    measured = Counter(answers)
    policy, count = service.policy, len(requests)
    on_predicted: int | None = None
    if policy.hash_on:
        wanted = [setup.names.get(p, p) for p in predict_each(lb, requests)]
        on_predicted = sum(1 for got, want in zip(answers, wanted, strict=True) if got == want)
        predicted = {n: c / count for n, c in Counter(wanted).items()}
        bound, rule = 0.0, "every request on the backend predicted for it"
    else:
        picks = predict_shares(lb)
        predicted = {setup.names.get(k, k): c / REFERENCE_PICKS for k, c in picks.items()}
        bound, rule = _bound(policy, count, predicted)
    names = [setup.names.get(e.key, e.key) for e in service.endpoints]
    rows = tuple(
        BackendRow(name, e.key, e.weight, measured[name], predicted.get(name, 0.0))
        for name, e in zip(names, service.endpoints, strict=True)
    )
    errors = count - sum(r.measured for r in rows)
    return Outcome(policy, count, rows, errors, on_predicted, bound, rule, applied.seconds)
