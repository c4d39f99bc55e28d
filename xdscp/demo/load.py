"""The tour's load-aware step: `client_side_weighted_round_robin` over backends reporting load.

The demo backends report their load with every answer (ORCA, the `endpoint-load-metrics`
header): their measured rate and utilization = rate / capacity, capacities 100, 200 and 400
requests/s. For this step every backend is registered with weight 1 (the same registrations,
rewritten under their leases; the tour's weights come back afterwards), so only the reports
tell them apart. Envoy weighs each by rate / utilization = its capacity, whatever load it
receives: the shares converge to 1/7, 2/7, 4/7. Then b1's capacity becomes 400 (`POST
/_demo/capacity?rps=400`, as a user would) and the shares move to 2/5, 1/5, 2/5.

The prediction is `xdscp simulate --capacity`'s: the service with the weights the clients
converge to (`xdscp.balancer.capacity.converged_service`), translated as xdscp serves it and
replayed by the reference balancer; the seconds beside it are the reference model's
(`xdscp.balancer.load_aware`). Waits are counts: batches of requests until Envoy's own
weights (its admin's /clusters) have the capacities' ratios, at most `MAX_BATCHES`; then a
window of `WINDOW` requests is measured. The bound, 3 % of each share: with fixed weights
Envoy's weighted round robin (EDF) is off by under one request per backend over a window, and
its weights are the capacities to Envoy's integer truncation (1 % of a weight of 100).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from xdscp.balancer.capacity import converged_service
from xdscp.balancer.load_aware import OrcaSettings, converge, follow
from xdscp.demo.admin import backend_control
from xdscp.demo.stack import problem
from xdscp.demo.tour import (
    REFERENCE_PICKS,
    Applied,
    BackendRow,
    TourSetup,
    apply_policy,
    predict_shares,
    send_through_envoy,
)
from xdscp.demo.traffic import Request
from xdscp.errors import ProcessError
from xdscp.model import BalancingPolicy, ClientSideWrr, LbPolicy, parse_host_port
from xdscp.registry import Placement, Registered
from xdscp.registry.registration import encode
from xdscp.translate import envoy_service_resources

CAPACITIES: Mapping[str, float] = {"b1": 100.0, "b2": 200.0, "b3": 400.0}  # requests/s
CHANGED = ("b1", 400.0)  # the capacity that changes while traffic flows
BLACKOUT_S = 1.0
UPDATE_S = 0.1
LOAD_POLICY = BalancingPolicy(
    lb=LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN,
    client_side_wrr=ClientSideWrr(blackout_period=BLACKOUT_S, weight_update_period=UPDATE_S),
)
WINDOW = 700  # requests measured once Envoy's weights have the capacities' ratios
BATCH = 50  # requests between two looks at Envoy's weights
MAX_BATCHES = 400  # 20 000 requests: far beyond the 1 s blackout at any speed
RATIO_BAND = 0.02  # Envoy's weight ratios within 2 % of the capacities'
SHARE_BOUND = 0.03  # each measured share within 3 % (absolute) of the predicted one


@dataclass(frozen=True, slots=True)
class LoadPhase:
    """One capacity setting: what Envoy did once its weights followed it."""

    capacities: Mapping[str, float]  # backend name → requests/s
    rows: tuple[BackendRow, ...]
    requests: int
    errors: int
    warmup: int  # requests sent until Envoy's weights had the capacities' ratios
    seconds: float  # ... and the seconds they took
    model_seconds: float | None  # the reference model's prediction of those seconds

    @property
    def ok(self) -> bool:
        """Every request answered, each share within `SHARE_BOUND` of the prediction."""
        return shares_match(self.rows, self.requests, self.errors)


def shares_match(rows: tuple[BackendRow, ...], requests: int, errors: int) -> bool:
    """Every request answered, each backend's share within `SHARE_BOUND` of its prediction."""
    return not errors and all(abs(r.measured / requests - r.predicted) <= SHARE_BOUND for r in rows)


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """The step: the policy, the equal-weight phase, then the phase after the change."""

    policy: BalancingPolicy
    phases: tuple[LoadPhase, ...]
    sync_seconds: float
    seconds: float = 0.0  # the whole step, the registrations rewritten back included

    @property
    def ok(self) -> bool:
        """Both phases matched their predictions."""
        return len(self.phases) == 2 and all(p.ok for p in self.phases)


def _settings() -> OrcaSettings:
    return OrcaSettings(blackout_period_s=BLACKOUT_S, weight_update_period_s=UPDATE_S)


def model_seconds(before: Mapping[str, float], after: Mapping[str, float] | None) -> float | None:
    """The reference model's seconds to converge from equal weights (`after` None), or to
    follow the change from `before` to `after`; the load is half the total capacity."""
    load = sum(before.values()) / 2
    if after is None:
        return converge(
            before, load, _settings(), window_s=UPDATE_S, duration_s=20.0, report_every_s=UPDATE_S
        ).settled_at
    return follow(before, after, load, _settings(), window_s=UPDATE_S, report_every_s=UPDATE_S)


async def set_weights(setup: TourSetup, weights: Mapping[str, int]) -> None:
    """Rewrite each endpoint's registration (`ip:port` → weight) under its own lease."""
    for endpoint, weight in weights.items():
        done: Registered = setup.registered[endpoint]
        registration = replace(done.registration, weight=weight)
        _, value = encode(registration, Placement())
        if not await setup.etcd.put_if_leased(done.key.encode(), value, lease=done.lease_id):
            raise ProcessError(
                problem(
                    f"the registration of {setup.names[endpoint]} could not be rewritten",
                    "its key is gone or held by another lease",
                    "see the registrar's warnings above (etcd_keepalive_failed, registration_*)",
                )
            )
        done.registration, done.value = registration, value


def _close(weights: Mapping[str, int], capacity: Mapping[str, float]) -> bool:
    """Envoy's weights have the capacities' ratios (each within `RATIO_BAND`)."""
    if set(weights) != set(capacity) or not all(weights.values()):
        return False
    first = next(iter(capacity))
    return all(
        abs(weights[k] / weights[first] / (c / capacity[first]) - 1) <= RATIO_BAND
        for k, c in capacity.items()
    )


async def _send(setup: TourSetup, count: int) -> list[str]:
    return await send_through_envoy(setup, [Request()] * count)


async def _settle(setup: TourSetup, capacity: Mapping[str, float]) -> tuple[int, float]:
    """Send batches until Envoy's weights have the capacities' ratios; (requests, seconds)."""
    started, sent = time.monotonic(), 0
    for _ in range(MAX_BATCHES):
        await _send(setup, BATCH)
        sent += BATCH
        if _close(await setup.admin.envoy_weights(setup.service), capacity):
            return sent, time.monotonic() - started
    seen = await setup.admin.envoy_weights(setup.service)
    raise ProcessError(
        problem(
            f"Envoy's weights {seen} did not reach the capacities' ratios in {sent} requests",
            "the backends' load reports did not reach Envoy's client-side weighted round robin",
            "see the backends' and Envoy's logs in the demo's work directory",
        )
    )


async def _phase(
    setup: TourSetup, applied: Applied, capacity: Mapping[str, float], model: float | None
) -> LoadPhase:
    """Wait for Envoy's weights to follow `capacity` (endpoint → rps), measure a window."""
    warmup, seconds = await _settle(setup, capacity)
    converged = converged_service(applied.service, dict(capacity))
    resources = envoy_service_resources(converged, setup.translate)
    picks = predict_shares(Applied(converged, resources, 0.0).reference())
    measured = Counter(await _send(setup, WINDOW))
    rows = tuple(
        BackendRow(
            setup.names[e.key], e.key, e.weight, measured[setup.names[e.key]],
            picks[e.key] / REFERENCE_PICKS,
        )
        for e in applied.service.endpoints
    )  # fmt: skip
    errors = WINDOW - sum(r.measured for r in rows)
    by_name = {setup.names[k]: c for k, c in capacity.items()}
    return LoadPhase(by_name, rows, WINDOW, errors, warmup, seconds, model)


async def run_load(setup: TourSetup) -> LoadOutcome:
    """The step: equal weights, capacities 1 : 2 : 4, then one capacity changed; the
    registered weights and the capacity are put back whatever happens."""
    endpoint = {name: key for key, name in setup.names.items()}
    before = {endpoint[n]: c for n, c in CAPACITIES.items()}
    name, rps = CHANGED
    after = {**before, endpoint[name]: rps}
    registered = {k: setup.registered[k].registration.weight for k in setup.names}
    port = parse_host_port(endpoint[name])[1]
    started = time.monotonic()
    try:
        await set_weights(setup, dict.fromkeys(registered, 1))
        applied = await apply_policy(setup, LOAD_POLICY)
        first = await _phase(setup, applied, before, model_seconds(before, None))
        await backend_control(port, f"capacity?rps={rps:g}")
        second = await _phase(setup, applied, after, model_seconds(before, after))
    finally:
        await backend_control(port, f"capacity?rps={CAPACITIES[name]:g}")
        await set_weights(setup, registered)
    took = time.monotonic() - started
    return LoadOutcome(LOAD_POLICY, (first, second), applied.seconds, took)
