"""The failure scene: one backend starts answering 503, and the client's view is measured
against the prediction, first without a policy, then with outlier detection and retries.

1. b2 fails (its `/_demo/fail`); with plain round robin, N requests through Envoy: the
   reference balancer predicts b2's share of them fail (a third).
2. The policy `xdscp policy set web GUARDED_FLAGS` writes: outlier detection
   (`consecutive_5xx` 3, `always_eject_one_host`) and retries (5xx, 2 retries on other
   hosts). Requests one at a time until Envoy's stats count
   the ejection (`outlier_detection.ejections_enforced_total`): b2 receives the threshold's
   3 requests (one more at most, in flight while the ejection reaches Envoy's main thread),
   and retries hide them from the client.
3. While b2 is ejected, N requests: none reach b2, none fail; the reference balancer with b2
   ejected predicts the split. Envoy's stats must still count that one ejection, active.
4. b2 recovers; once Envoy's /clusters no longer flags it (base ejection time, checked every
   interval), N requests: all three backends again, as predicted, no errors.

Every wait is on Envoy's own state (stats, /clusters, its route), never on a sleep.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdscp.balancer import build_balancer
from xdscp.cache import TypeUrl
from xdscp.demo.admin import backend_control
from xdscp.demo.stack import problem
from xdscp.demo.tour import (
    REFERENCE_PICKS,
    REFERENCE_SEED,
    ROTATION_SLACK,
    SYNC_TIMEOUT_S,
    Applied,
    TourSetup,
    apply_policy,
    predict_shares,
    unpack,
)
from xdscp.demo.traffic import send_plain
from xdscp.errors import ProcessError
from xdscp.model import BalancingPolicy, LbPolicy, OutlierDetection, RetryPolicy, parse_host_port

FAILING = "b2"
THRESHOLD = 3
RETRIES = 2
INTERVAL_S = 1.0
BASE_EJECTION_S = 8.0
MAX_UNTIL_EJECTED = 30  # requests: b2 gets every third one, so 3 failures take about 9
PLAIN = BalancingPolicy(lb=LbPolicy.ROUND_ROBIN)
# Envoy's default max_ejection_percent (10) would eject none of 3 hosts: a first ejection
# is let through by always_eject_one_host (one host of 3 is 33 %).
GUARDED = BalancingPolicy(
    lb=LbPolicy.ROUND_ROBIN,
    outlier_detection=OutlierDetection(
        consecutive_5xx=THRESHOLD,
        interval=INTERVAL_S,
        base_ejection_time=BASE_EJECTION_S,
        always_eject_one_host=True,
    ),
    retries=RetryPolicy(retry_on=("5xx",), num_retries=RETRIES),
)
GUARDED_FLAGS = (
    f"--lb round_robin --consecutive-5xx {THRESHOLD} --ejection-interval {INTERVAL_S:g}s"
    f" --base-ejection-time {BASE_EJECTION_S:g}s --always-eject-one-host"
    f" --retry-on 5xx --num-retries {RETRIES}"
)
"""The `xdscp policy set SERVICE` flags that store `GUARDED` (the README shows them; a test
runs them and compares what etcd holds)."""
_OUTLIER = "outlier_detection."


def scene_requests(requests: int) -> int:
    """Requests per step: the tour's count, kept between 30 and 90 (a multiple of 3)."""
    return 3 * max(10, min(requests, 90) // 3)


@dataclass(frozen=True, slots=True)
class Step:
    """One batch of requests: successful answers per backend and client errors, and what
    the failing backend itself counted receiving while failing, each beside its prediction.
    A count predicted 0 must be 0, others may differ by a rotation's position
    (`ROTATION_SLACK`); the failing backend's count must lie in `failing_range`."""

    label: str
    requests: int
    answered: Mapping[str, int]
    predicted: Mapping[str, float]
    errors: int
    predicted_errors: float
    failing_received: int
    predicted_failing: float
    failing_range: tuple[float, float]

    @property
    def ok(self) -> bool:
        """Errors, each backend and the failing backend's count within their bounds."""
        pairs = [(self.errors, self.predicted_errors, ROTATION_SLACK)]
        pairs += [(self.answered.get(n, 0), p, ROTATION_SLACK) for n, p in self.predicted.items()]
        low, high = self.failing_range
        return (
            all(abs(got - want) <= (slack if want else 0.0) for got, want, slack in pairs)
            and low <= self.failing_received <= high
            and sum(self.answered.values()) + self.errors == self.requests
        )


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """The whole scene: its steps, Envoy's ejection counters (read once b2 had been ejected
    for a batch) and how long Envoy took to take b2 back once it recovered."""

    backend: str
    endpoint: str
    steps: tuple[Step, ...]
    ejections_enforced: int
    ejections_active: int
    back_after_s: float

    @property
    def ok(self) -> bool:
        """Every step as predicted, and Envoy counted exactly one ejection, still active."""
        ejection = (self.ejections_enforced, self.ejections_active) == (1, 1)
        return ejection and all(s.ok for s in self.steps)


@dataclass
class _Scene:
    setup: TourSetup
    endpoint: str
    requests: int

    async def failed_so_far(self) -> int:
        """The failing backend's own count of the requests it failed."""
        port = parse_host_port(self.endpoint)[1]
        return int((await backend_control(port, "counts"))["failed"])

    async def send(self, count: int) -> tuple[Counter[str], int]:
        """`count` requests: successful answers per backend, and client errors."""
        answers = await asyncio.to_thread(
            send_plain, self.setup.listener_port, self.setup.service, count
        )
        answered = Counter(who for status, who in answers if status == 200 and who)
        return answered, sum(1 for status, _ in answers if status != 200)

    async def outlier_stats(self) -> dict[str, int]:
        """Envoy's outlier detection counters of the service's cluster, by short name."""
        prefix = f"cluster.{self.setup.service}.{_OUTLIER}"
        stats = await self.setup.admin.envoy_stats(prefix)
        return {k.removeprefix(prefix): v for k, v in stats.items()}

    def reference(self, applied: Applied, ejected: Sequence[str] = ()) -> dict[str, float]:
        """Requests per backend name the reference balancer predicts out of a batch."""
        by_type = {r.type_url: unpack(r) for r in applied.resources}
        lb = build_balancer(
            by_type[TypeUrl.CLUSTER],
            by_type[TypeUrl.ENDPOINT],
            rng=random.Random(REFERENCE_SEED),
            ejected=ejected,
        )
        picks = predict_shares(lb)
        names = self.setup.names
        return {names.get(k, k): self.requests * c / REFERENCE_PICKS for k, c in picks.items()}

    async def step(self, label: str, reference: dict[str, float], *, failing: bool) -> Step:
        """A batch; while the failing backend fails, what the reference sends it fails."""
        before = await self.failed_so_far()
        answered, errors = await self.send(self.requests)
        received = await self.failed_so_far() - before
        lost = reference.get(FAILING, 0.0) if failing else 0.0
        predicted = {**reference, FAILING: reference.get(FAILING, 0.0) - lost}
        slack = ROTATION_SLACK if lost else 0.0
        return Step(
            label, self.requests, dict(answered), predicted, errors, lost, received, lost,
            (lost - slack, lost + slack),
        )  # fmt: skip

    async def until_ejected(self, ejections: int) -> Step:
        """Requests one at a time until Envoy's stats count one more ejection than
        `ejections`. The failing backend must have received the threshold's requests, or
        one more (in flight while the ejection reached Envoy's main thread)."""
        before = await self.failed_so_far()
        answered: Counter[str] = Counter()
        sent = errors = 0
        while (await self.outlier_stats()).get("ejections_enforced_total", 0) == ejections:
            if sent == MAX_UNTIL_EJECTED:
                raise ProcessError(
                    problem(
                        f"Envoy did not eject {FAILING} after {sent} requests",
                        f"{FAILING} failed {await self.failed_so_far() - before} of them"
                        f" (consecutive_5xx {THRESHOLD})",
                        "see Envoy's log and /stats in the demo's work directory",
                    )
                )
            got, failed = await self.send(1)
            answered, sent, errors = answered + got, sent + 1, errors + failed
        received = await self.failed_so_far() - before
        return Step(
            f"until Envoy ejects {FAILING}", sent, dict(answered), {}, errors, 0.0, received,
            THRESHOLD, (THRESHOLD, THRESHOLD + 1),
        )  # fmt: skip

    async def wait_back(self) -> float:
        """Seconds until Envoy's /clusters no longer flags the recovered backend."""
        started = time.monotonic()
        limit = BASE_EJECTION_S + 2 * INTERVAL_S + SYNC_TIMEOUT_S
        while time.monotonic() - started < limit:
            flags = await self.setup.admin.envoy_host_flags(self.setup.service, self.endpoint)
            if flags is not None and "failed_outlier_check" not in flags:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise ProcessError(
            problem(
                f"Envoy did not take {FAILING} back within {limit:.0f} s of its recovery",
                f"base_ejection_time is {BASE_EJECTION_S:g} s, checked every {INTERVAL_S:g} s",
                "see Envoy's /clusters and log in the demo's work directory",
            )
        )


async def wait_route_retries(setup: TourSetup, retries: int | None) -> None:
    """Wait until Envoy's route to the service carries `retries` (None: no retry policy)."""
    started = time.monotonic()
    while await setup.admin.envoy_route_retries(setup.service) != retries:
        if time.monotonic() - started > SYNC_TIMEOUT_S:
            raise ProcessError(
                problem(
                    f"Envoy's route to {setup.service!r} did not get retries {retries}",
                    "a NACK, or an Envoy or control plane too slow to answer",
                    f"look at `last_nack` in http://127.0.0.1:{setup.admin.xdscp_port}/debug/nodes",
                )
            )
        await asyncio.sleep(0.02)


async def _apply(setup: TourSetup, policy: BalancingPolicy) -> Applied:
    applied = await apply_policy(setup, policy)
    await wait_route_retries(setup, None if policy.retries is None else policy.retries.num_retries)
    return applied


async def run_failure(setup: TourSetup) -> FailureOutcome:
    """The scene (see the module's docstring); the failing backend recovers whatever happens."""
    endpoint = next(k for k, name in setup.names.items() if name == FAILING)
    scene = _Scene(setup, endpoint, scene_requests(setup.requests))
    port = parse_host_port(endpoint)[1]
    plain = await _apply(setup, PLAIN)
    await backend_control(port, "fail")
    try:
        without = await scene.step("no policy", scene.reference(plain), failing=True)
        guarded = await _apply(setup, GUARDED)
        baseline = (await scene.outlier_stats()).get("ejections_enforced_total", 0)
        until = await scene.until_ejected(baseline)
        ejected = await scene.step(
            f"{FAILING} ejected", scene.reference(guarded, [endpoint]), failing=True
        )
        stats = await scene.outlier_stats()
    finally:
        await backend_control(port, "recover")
    back = await scene.wait_back()
    recovered = await scene.step(f"{FAILING} back", scene.reference(guarded), failing=False)
    return FailureOutcome(
        FAILING, endpoint, (without, until, ejected, recovered),
        stats.get("ejections_enforced_total", 0) - baseline, stats.get("ejections_active", 0),
        back,
    )  # fmt: skip
