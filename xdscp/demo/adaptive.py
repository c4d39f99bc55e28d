"""The tour's adaptive step: `weighted_round_robin` with weights xdscp computes from load.

The same three backends as the load-aware step (capacities 100, 200 and 400 requests/s, each
answer carrying its ORCA utilization = rate / capacity), every one registered with weight 1;
the policy is `weighted_round_robin` with `adaptive_weights`. This time Envoy does not weigh
anything itself: it copies the utilizations into the load reports (LRS) it sends xdscp every
second, and xdscp's loop (`xdscp.load.adaptive`, deciding every quarter second) estimates
each capacity as reported rate / utilization and pushes weights in their ratio, the heaviest
1000: 250, 500, 1000, shares 1/7, 2/7, 4/7. Then b1's capacity becomes 400 and the weights
follow to 1000, 500, 1000 (shares 2/5, 1/5, 2/5).

The demo's settings make each change one exact push. A backend measures its rate over the
last 2 s, so a report covering traffic less than 2 s after a push mixes two weightings; with
`min_push_interval` 4.5 s (2 s of that window, 1 s of report, the reports' phase and a decision
tick) and `smoothing` 1 (the newest estimate alone), the estimate a push is made from never
mixes them, and `max_step` 4 lets one push go from equal weights to 1 : 2 : 4 and from there
to 4 : 2 : 4. The loop's first decision, when the policy is set, has no report yet and keeps
the registered weights: the first computed push comes `min_push_interval` later.

Waits are on the event: batches of requests until Envoy's /clusters holds the weights xdscp
serves (`/debug/weights`) and their shares are within `WEIGHT_BAND` of the capacities',
bounded by `PHASE_TIMEOUT_S`; then a window of `WINDOW` requests is measured beside the
prediction (`converged_service`: the capacities' weights, replayed by the reference
balancer). The seconds beside it are the loop's own (`AdaptiveWeights`) driven by the same
settings, report and decision periods: `model_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from xdscp.balancer.capacity import converged_service
from xdscp.demo.admin import backend_control
from xdscp.demo.load import CAPACITIES, CHANGED, WINDOW, set_weights, shares_match
from xdscp.demo.stack import LOAD_REPORT_INTERVAL_S, WEIGH_INTERVAL_S, problem
from xdscp.demo.tour import (
    REFERENCE_PICKS,
    SYNC_TIMEOUT_S,
    Applied,
    BackendRow,
    TourSetup,
    predict_shares,
    send_through_envoy,
    wait_registered,
)
from xdscp.demo.traffic import Request
from xdscp.errors import ProcessError
from xdscp.load import AdaptiveWeights, LoadSample
from xdscp.model import AdaptiveSettings, BalancingPolicy, LbPolicy, Service, parse_host_port
from xdscp.registry import set_policy
from xdscp.translate import envoy_service_resources

SETTINGS = AdaptiveSettings(
    min_push_interval=4.5, smoothing=1.0, max_step=4.0, hysteresis=0.04, stale_after=10.0
)
ADAPTIVE_POLICY = BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN, adaptive_weights=SETTINGS)
BATCH = 50  # requests between two looks at the weights
WEIGHT_BAND = 0.025  # the weights' shares within this of the capacities' (absolute)
PHASE_TIMEOUT_S = 90.0  # a phase takes 1-2 pushes, 5-10 s: far beyond that on any machine
MAX_WINDOWS = 5  # windows measured again when a push landed inside one
MODEL_HORIZON_S = 60.0
Seen = tuple[dict[str, int], float]  # Envoy's weights, and when they were first seen


@dataclass(frozen=True, slots=True)
class AdaptivePhase:
    """One capacity setting: the weights xdscp computed, and what Envoy did with them."""

    capacities: Mapping[str, float]  # backend name → requests/s
    rows: tuple[BackendRow, ...]  # `weight`: the weight xdscp served (and Envoy held)
    requests: int
    errors: int
    seconds: float  # from the policy set (or the capacity changed) to Envoy's converged weights
    pushes: int  # computed weightings xdscp pushed meanwhile
    model_seconds: float | None  # the loop's own prediction of those seconds

    @property
    def ok(self) -> bool:
        """Every request answered, each share within `SHARE_BOUND` of the prediction."""
        return shares_match(self.rows, self.requests, self.errors)


@dataclass(frozen=True, slots=True)
class AdaptiveOutcome:
    """The step: the policy, the phase with capacities 1 : 2 : 4, the phase after the change."""

    policy: BalancingPolicy
    phases: tuple[AdaptivePhase, ...]
    seconds: float = 0.0  # the whole step, the registrations rewritten back included

    @property
    def ok(self) -> bool:
        """Both phases matched their predictions."""
        return len(self.phases) == 2 and all(p.ok for p in self.phases)


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Each key's share of the total."""
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def converged(
    envoy: Mapping[str, int], served: Mapping[str, int] | None, capacity: Mapping[str, float]
) -> bool:
    """Envoy holds exactly the weights xdscp serves, for every endpoint of `capacity`, and
    their shares are within `WEIGHT_BAND` of the capacities' shares."""
    if served is None or set(envoy) != set(capacity) or dict(envoy) != dict(served):
        return False
    if not all(w > 0 for w in envoy.values()):
        return False
    wanted, held = shares(capacity), shares(envoy)
    return all(abs(held[k] - wanted[k]) <= WEIGHT_BAND for k in capacity)


def _tick(at: float) -> float:
    """`at` on the decision grid (sums of float steps drift)."""
    return round(at / WEIGH_INTERVAL_S) * WEIGH_INTERVAL_S


def model_seconds(
    before: Mapping[str, float],
    after: Mapping[str, float] | None = None,
    since_push: float = 0.0,
    settings: AdaptiveSettings = SETTINGS,
) -> float | None:
    """The seconds xdscp's own loop (`AdaptiveWeights`, with `settings`) takes: from the
    policy set (`after` None; registered weights equal) until the weights' shares are within
    `WEIGHT_BAND` of `before`'s capacities'; or, converged on `before` by a push `since_push`
    seconds before the change, from the change until they are within it of `after`'s.
    Reports every `LOAD_REPORT_INTERVAL_S`, the first a whole period after the start (the
    worst case), each endpoint's rate its share of the weights served, its utilization rate
    / capacity; a decision every `WEIGH_INTERVAL_S`. None: not within a minute."""
    loop = AdaptiveWeights(settings, dict.fromkeys(before, 1))
    start, target = 0.0, before
    if after is not None:
        _report(loop, before, -LOAD_REPORT_INTERVAL_S)
        loop.decide(0.0)  # converged on `before` by this push
        start, target = _tick(max(0.0, since_push)), after
    wanted = shares(target)
    report_at = start + LOAD_REPORT_INTERVAL_S
    for step in range(round(MODEL_HORIZON_S / WEIGH_INTERVAL_S) + 1):
        now = start + step * WEIGH_INTERVAL_S
        while report_at <= now + 1e-9:
            _report(loop, target, report_at)
            report_at += LOAD_REPORT_INTERVAL_S
        loop.decide(now)
        held = shares(loop.current)
        if all(abs(held[k] - wanted[k]) <= WEIGHT_BAND for k in target):
            return round(now - start, 6)
    return None


def _report(loop: AdaptiveWeights, capacity: Mapping[str, float], at: float) -> None:
    """One report per endpoint, for the period ending at `at`, under the current weights."""
    for key, rps in shares(loop.current).items():
        since = at - LOAD_REPORT_INTERVAL_S
        loop.observe(LoadSample(key, at, rps, rps / capacity[key], since=since))


async def _send(setup: TourSetup, count: int) -> list[str]:
    return await send_through_envoy(setup, [Request()] * count)


async def _apply(setup: TourSetup) -> Service:
    """Write the adaptive policy (as `xdscp policy set` does); the service as etcd holds it,
    once Envoy holds every endpoint at the weights xdscp serves for it (its loop's own)."""
    await set_policy(setup.etcd, setup.service, ADAPTIVE_POLICY, setup.layout.policies_prefix)
    service = await wait_registered(setup, SYNC_TIMEOUT_S)
    keys = {e.key for e in service.endpoints}
    started = time.monotonic()
    while time.monotonic() - started < SYNC_TIMEOUT_S:
        served = await setup.admin.served_weights(setup.service)
        held = await setup.admin.envoy_weights(setup.service)
        if served is not None and set(held) == keys and held == served:
            return service
        await asyncio.sleep(0.02)
    raise ProcessError(
        problem(
            f"Envoy did not take the weights xdscp computes for {setup.service!r} within"
            f" {SYNC_TIMEOUT_S:.0f} s (Envoy holds {held}, xdscp serves {served})",
            "the adaptive_weights policy did not reach xdscp, or its push did not reach Envoy",
            f"see http://127.0.0.1:{setup.admin.xdscp_port}/debug/weights and /debug/nodes",
        )
    )


def _predicted(setup: TourSetup, service: Service, capacity: Mapping[str, float]) -> Counter[str]:
    """The reference balancer's picks over the capacities' weights, as xdscp serves them."""
    ideal = converged_service(service, dict(capacity))
    resources = envoy_service_resources(ideal, setup.translate)
    return predict_shares(Applied(ideal, resources, 0.0).reference())


async def _phase(
    setup: TourSetup, service: Service, capacity: Mapping[str, float], *, since: float,
    pushed: int, model: float | None,
) -> tuple[AdaptivePhase, float]:  # fmt: skip
    """Send batches until Envoy holds xdscp's weights and they give the capacities' shares
    (at most `PHASE_TIMEOUT_S` after `since`), then measure a window (again when a push
    landed inside it); the phase (`pushed`: xdscp's pushes counted at `since`) and when
    Envoy's weights were first seen at the values measured (the push's arrival)."""
    seen: Seen | None = None
    for _ in range(MAX_WINDOWS):
        held, reached = await _converge(setup, capacity, since, seen)
        answers = Counter(await _send(setup, WINDOW))
        after = await setup.admin.envoy_weights(setup.service)
        if after == held:
            break
        seen = (after, time.monotonic())  # a push moved the weights inside the window
    else:
        raise ProcessError(
            problem(
                f"xdscp's weights for {setup.service!r} kept moving: {MAX_WINDOWS} windows"
                f" of {WINDOW} requests each saw a push",
                "the backends' load reports are noisier than the policy's hysteresis",
                f"see http://127.0.0.1:{setup.admin.xdscp_port}/debug/weights",
            )
        )
    picks = _predicted(setup, service, capacity)
    rows = tuple(
        BackendRow(
            setup.names[e.key], e.key, held[e.key], answers[setup.names[e.key]],
            picks[e.key] / REFERENCE_PICKS,
        )
        for e in service.endpoints
    )  # fmt: skip
    errors = WINDOW - sum(r.measured for r in rows)
    pushes = await setup.admin.adaptive_pushes(setup.service) - pushed
    by_name = {setup.names[k]: c for k, c in capacity.items()}
    phase = AdaptivePhase(by_name, rows, WINDOW, errors, reached - since, pushes, model)
    return phase, reached


async def _converge(
    setup: TourSetup, capacity: Mapping[str, float], since: float, seen: Seen | None
) -> Seen:
    """Batches until `converged`: Envoy's weights then, and when they were first seen (`seen`:
    the weights last seen before, and when). ProcessError after the deadline."""
    while True:
        await _send(setup, BATCH)
        held = await setup.admin.envoy_weights(setup.service)
        if seen is None or seen[0] != held:
            seen = (held, time.monotonic())
        served = await setup.admin.served_weights(setup.service)
        if converged(held, served, capacity):
            return seen
        if time.monotonic() - since > PHASE_TIMEOUT_S:
            wanted = {setup.names[k]: round(s, 3) for k, s in shares(capacity).items()}
            raise ProcessError(
                problem(
                    f"xdscp's weights for {setup.service!r} did not reach the capacities'"
                    f" shares {wanted} within {PHASE_TIMEOUT_S:.0f} s (xdscp serves"
                    f" {served}, Envoy holds {held})",
                    "Envoy's load reports (LRS) did not reach xdscp, or carried no"
                    " utilization (the backends' ORCA header)",
                    f"see http://127.0.0.1:{setup.admin.xdscp_port}/debug/weights,"
                    " /api/services (each endpoint's measured load) and the logs in the"
                    " demo's work directory",
                )
            )


async def run_adaptive(setup: TourSetup) -> AdaptiveOutcome:
    """The step: equal registered weights, the adaptive policy, capacities 1 : 2 : 4, then
    one capacity changed; the registered weights and the capacity are put back whatever
    happens."""
    endpoint = {name: key for key, name in setup.names.items()}
    before = {endpoint[n]: c for n, c in CAPACITIES.items()}
    name, rps = CHANGED
    after = {**before, endpoint[name]: rps}
    registered = {k: setup.registered[k].registration.weight for k in setup.names}
    port = parse_host_port(endpoint[name])[1]
    started = time.monotonic()
    try:
        await set_weights(setup, dict.fromkeys(registered, 1))
        pushed, policy_set = await setup.admin.adaptive_pushes(setup.service), time.monotonic()
        service = await _apply(setup)
        first, pushed_at = await _phase(
            setup, service, before, since=policy_set, pushed=pushed, model=model_seconds(before)
        )
        pushed, changed = await setup.admin.adaptive_pushes(setup.service), time.monotonic()
        await backend_control(port, f"capacity?rps={rps:g}")
        model = model_seconds(before, after, since_push=changed - pushed_at)
        second, _ = await _phase(setup, service, after, since=changed, pushed=pushed, model=model)
    finally:
        await backend_control(port, f"capacity?rps={CAPACITIES[name]:g}")
        await set_weights(setup, registered)
    return AdaptiveOutcome(ADAPTIVE_POLICY, (first, second), time.monotonic() - started)
