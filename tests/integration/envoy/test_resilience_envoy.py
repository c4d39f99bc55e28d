"""Resilience policies served over xDS to a real Envoy, proven with failing demo backends.

Every proof prints its figures (run with `-s` to see them). Conditions are waited on as
events (Envoy's /clusters flags, xdscp's in-sync view, request counts), never on sleeps.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from typing import Any

import pytest

from tests.harness import model
from tests.harness.plane import (
    EnvoyStarter,
    Plane,
    endpoints_on,
    envoys_in_sync,
    running_backends,
)
from tests.harness.traffic import concurrent, envoy_stats, host_flags, send, sequential, serving
from xdscp.balancer import simulate_hot_key
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.model import HashOn, LbPolicy
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import wait_for
from xdscp.translate import client_resources

pytestmark = pytest.mark.envoy


async def test_outlier_detection_ejects_a_failing_backend(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """consecutive_5xx 3: a backend that starts answering 503 receives its 3 failing
    requests (one more at most while the ejection reaches Envoy's worker), then none: the
    client sees exactly those errors and every later request succeeds."""
    outlier = {"consecutive_5xx": 3, "interval": "1s", "base_ejection_time": "5m",
               "max_ejection_percent": 50}  # fmt: skip
    proxy = await serving(
        plane, envoy, model.service(endpoints_on(backends[:3]), outlier_detection=outlier)
    )
    bad = backends[1]
    bad.faults.fail(503)
    results = await send(plane, 90)
    errors = sum(1 for status, _, _ in results if status != 200)
    tail_errors = sum(1 for status, _, _ in results[30:] if status != 200)
    stats = await envoy_stats(
        proxy, "cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"
    )
    ejected = await host_flags(proxy, bad.http_port)
    print(
        f"\noutlier: failing backend received {bad.faults.failed} requests after failing "
        f"(threshold 3); client errors {errors}/90; errors in the last 60: {tail_errors}; "
        f"Envoy ejections {stats}; host flags {ejected}"
    )
    assert 3 <= bad.faults.failed <= 4
    assert errors == bad.faults.failed
    assert tail_errors == 0
    assert "failed_outlier_check" in ejected
    assert sum(stats.values()) == 1


async def test_active_health_check_takes_a_backend_out_before_requests_fail(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """HTTP /healthz every 0.2 s, healthy after 2 passes: a backend whose health endpoint
    answers 503 leaves rotation at the first such answer (Envoy takes a non-2xx answer as
    definitive; `unhealthy_threshold` counts timeouts and refused connections); then its
    requests fail too and no client sees it; healthy again, it is back after 2 checks."""
    check = {"kind": "http", "path": "/healthz", "interval": "200ms", "timeout": "1s",
             "healthy_threshold": 2, "unhealthy_threshold": 2}  # fmt: skip
    proxy = await serving(
        plane, envoy, model.service(endpoints_on(backends[:3]), health_check=check)
    )
    bad = backends[2]
    before = bad.faults.health_checks
    bad.faults.set_healthy(False)
    started = time.monotonic()
    flags: list[str] = []

    async def out() -> bool:
        flags[:] = [await host_flags(proxy, bad.http_port)]
        return "failed_active_health_check" in flags[0]

    while not await out():
        assert time.monotonic() - started < 15, flags
        await asyncio.sleep(0.02)
    left_after = time.monotonic() - started
    checks_to_leave = bad.faults.health_checks - before
    bad.faults.fail(503)  # the backend now really fails: nobody should notice
    received = bad.faults.requests
    results = await send(plane, 60)
    errors = sum(1 for status, _, _ in results if status != 200)
    reached = bad.faults.requests - received
    bad.faults.recover()
    back_from = bad.faults.health_checks
    bad.faults.set_healthy(True)
    started = time.monotonic()
    while "failed_active_health_check" in await host_flags(proxy, bad.http_port):
        assert time.monotonic() - started < 15
        await asyncio.sleep(0.02)
    flag_cleared = time.monotonic() - started
    checks_to_return = bad.faults.health_checks - back_from
    waited, received = 0, bad.faults.requests
    while bad.faults.requests == received:  # Envoy's workers pick the change up
        waited += len(await send(plane, 1))
        assert waited < 2000
    back_after = time.monotonic() - started
    served = Counter(who for _, who, _ in await send(plane, 30))
    print(
        f"\nhealth check: out of rotation {left_after:.2f} s after /healthz failed "
        f"({checks_to_leave} checks at 0.2 s); then 60 requests: {errors} errors, "
        f"{reached} reached it; healthy flag back {flag_cleared:.2f} s "
        f"after /healthz passed ({checks_to_return} checks; threshold 2), first request "
        f"{back_after:.2f} s ({waited} requests); next 30 requests: {dict(served)}"
    )
    assert checks_to_leave >= 1
    assert errors == 0
    assert reached == 0
    assert checks_to_return >= 2
    assert served[bad.config.name] >= 8


async def test_circuit_breaker_overflows_requests_over_the_limit(
    plane: Plane, envoy: EnvoyStarter
) -> None:
    """max_requests 2 on slow backends: of 12 requests sent at once, the ones over the limit
    are refused at once (503, `x-envoy-overloaded`), counted in Envoy's overflow stats, and
    the backends never hold more than 2 together."""
    configs = [BackendConfig(f"s{i}", grpc_port=-1, delay_s=0.5) for i in range(2)]
    async with running_backends(configs) as slow:
        limits = {"max_requests": 2, "max_pending_requests": 2}
        proxy = await serving(
            plane, envoy, model.service(endpoints_on(slow), circuit_breakers=limits)
        )
        for backend in slow:
            backend.faults.reset_max_in_flight()
        results = await asyncio.to_thread(concurrent, plane.listener_port, 12)
        passed = sum(1 for status, _ in results if status == 200)
        overflowed = [h for status, h in results if status == 503]
        stats = await envoy_stats(proxy, "cluster.web.upstream_rq_")
        overflow = {k: v for k, v in stats.items() if k.endswith("overflow")}
        most = sum(b.faults.max_in_flight for b in slow)
        print(
            f"\ncircuit breaker: 12 at once, limit 2: {passed} passed, {len(overflowed)} "
            f"overflowed; Envoy {overflow}; most in flight at the backends {most}"
        )
        assert passed >= 2
        assert passed + len(overflowed) == 12
        assert len(overflowed) >= 1
        assert all(h.get("x-envoy-overloaded") == "true" for h in overflowed)
        assert sum(overflow.values()) == len(overflowed)
        assert most <= 4  # each backend at most 2; together bounded by the limit's spread


async def test_retries_hide_a_failing_backend(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """One of three backends answers 503: 90 requests without retries see about a third
    fail; with `retries: {retry_on: [5xx], num_retries: 2}` (to other hosts) none do."""
    await serving(plane, envoy, model.service(endpoints_on(backends[:3])))
    backends[0].faults.fail(503)
    without = sum(1 for status, _, _ in await send(plane, 90) if status != 200)
    retried = model.service(
        endpoints_on(backends[:3]), retries={"retry_on": ["5xx"], "num_retries": 2}
    )
    plane.source.set({"web": retried})
    await envoys_in_sync(plane)
    before = backends[0].faults.failed
    with_retries = sum(1 for status, _, _ in await send(plane, 90) if status != 200)
    print(
        f"\nretries: 90 requests, 1 of 3 backends failing: {without} errors without retries, "
        f"{with_retries} with 2 retries ({backends[0].faults.failed - before} tries failed "
        "and were retried)"
    )
    assert without >= 25
    assert with_retries == 0
    assert backends[0].faults.failed - before >= 25


def _slow_start_share(elapsed: float, window: float, aggression: float, floor: float) -> float:
    """Envoy's slow-start weight factor for a host `elapsed` seconds old."""
    if elapsed >= window:
        return 1.0
    return max(floor, (max(elapsed, 0.0) / window) ** (1 / aggression))


async def test_slow_start_ramps_a_new_backend(plane: Plane, envoy: EnvoyStarter) -> None:
    """Round robin with slow_start {window 4 s, aggression 1, min 10 %}: a third backend
    added to two warm ones gets, in each time window, the share Envoy's formula predicts
    (factor f = max(0.1, t / 4 s); share f / (f + 2)) within 5 sigma, measured on the
    timestamps of the requests themselves."""
    configs = [BackendConfig(f"w{i}", grpc_port=-1) for i in range(3)]
    async with running_backends(configs) as warm:
        slow = {"window": "4s", "aggression": 1.0, "min_weight_percent": 10}
        policy = {"lb": LbPolicy.ROUND_ROBIN, "slow_start": slow}
        await serving(plane, envoy, model.service(endpoints_on(warm[:2]), **policy))
        warmed = time.monotonic()
        while time.monotonic() - warmed < 4.5:  # the first two leave their own slow start
            await send(plane, 50)
        plane.source.set({"web": model.service(endpoints_on(warm), **policy)})
        await envoys_in_sync(plane)
        added = time.monotonic()
        results = []
        while time.monotonic() - added < 5.0:
            results.extend(await send(plane, 100))
    new = warm[2].config.name
    rows = []
    for start in range(5):
        inside = [r for r in results if start <= r[2] - added < start + 1]
        got = sum(1 for r in inside if r[1] == new)
        shares = [(f := _slow_start_share(r[2] - added, 4.0, 1.0, 0.1)) / (f + 2) for r in inside]
        expected = sum(shares)
        sigma = math.sqrt(sum(p * (1 - p) for p in shares)) or 1.0
        rows.append((start, len(inside), got, expected, sigma))
    print("\nslow start: window [s), requests, new backend's, predicted (sigma)")
    for start, total, got, expected, sigma in rows:
        print(f"  [{start}, {start + 1}) {total:5d} {got:5d} {expected:8.1f} ({sigma:.1f})")
    for _, total, got, expected, sigma in rows:
        assert total > 0
        assert abs(got - expected) <= 5 * sigma + 0.02 * total
    assert rows[0][2] / rows[0][1] < rows[-1][2] / rows[-1][1]


def _envoy_slots(active: int, factor: int, hosts: int) -> int:
    """Envoy's bounded-load capacity of one equal-weight host with `active` requests in the
    cluster: a host holding more is skipped (BoundedLoadHashingLoadBalancer)."""
    total = ((active + 1) * factor + 99) // 100
    return max(math.ceil(total / hosts), 1)


async def _hold_hot_key(
    plane: Plane, hosts: list[Backend], key: str, n: int
) -> tuple[list[threading.Thread], dict[str, int]]:
    """`n` requests for `key`, each sent once the previous one reached a backend, all held
    there (in flight); the threads sending them and the backend each reached."""
    before = {b.config.name: b.faults.requests for b in hosts}
    for backend in hosts:
        backend.faults.reset_max_in_flight()
        backend.faults.hold()
    threads = []
    for i in range(n):
        thread = threading.Thread(target=sequential, args=(plane.listener_port, 1, {"x-key": key}))
        thread.start()
        threads.append(thread)
        await wait_for(lambda i=i: sum(b.faults.requests for b in hosts) - sum(before.values()) > i)
    return threads, {b.config.name: b.faults.requests - before[b.config.name] for b in hosts}


async def _release(proxy: EnvoyProcess, hosts: list[Backend], threads: list[Any]) -> None:
    """Answer the held requests and wait until Envoy counts none active."""
    for backend in hosts:
        backend.faults.release()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    for _ in range(500):
        if (await envoy_stats(proxy, "cluster.web.upstream_rq_active")).get(
            "cluster.web.upstream_rq_active"
        ) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("Envoy still counts active requests")


async def test_bounded_load_spreads_a_hot_key_where_the_reference_predicts(
    plane: Plane, envoy: EnvoyStarter
) -> None:
    """ring_hash on x-key with hash_balance_factor 150, 9 requests for one key held in flight
    (each sent once the previous one reached a backend): no backend holds more than Envoy's
    bound (its capacity at the last pick + 1, here 6; 1.5 x average = 4.5), and the overflow
    lands on exactly the backends, in exactly the numbers, that the reference balancer's
    `simulate_hot_key` (`xdscp simulate --hot-key K --concurrency 9`) predicts for the same
    resources, for each of several keys. Without the factor all 9 would sit on one host."""
    n, factor = 9, 150
    configs = [BackendConfig(f"h{i}", grpc_port=-1) for i in range(3)]
    async with running_backends(configs) as hosts:
        policy = {"lb": LbPolicy.RING_HASH, "hash_on": (HashOn.parse("header:x-key"),),
                  "hash_balance_factor": factor}  # fmt: skip
        service = model.service(endpoints_on(hosts), **policy)
        proxy = await serving(plane, envoy, service)
        await _release(proxy, hosts, [])
        names = {f"127.0.0.1:{b.http_port}": b.config.name for b in hosts}
        rows = []
        for key in ("hot", "user-42", "tenant-a", "z"):
            threads, landed = await _hold_hot_key(plane, hosts, key, n)
            most = {b.config.name: b.faults.max_in_flight for b in hosts}
            await _release(proxy, hosts, threads)
            predicted = simulate_hot_key(
                service, client_resources("envoy"), key=key, concurrency=n, requests=n
            )
            expected = {name: predicted.requests.get(k, 0) for k, name in names.items()}
            rows.append((key, landed, expected, most))
    bound = _envoy_slots(n - 1, factor, 3) + 1
    print(f"\nbounded load, factor {factor}, {n} requests of one key held in flight:")
    for key, landed, expected, most in rows:
        print(f"  key {key!r}: Envoy {landed}, reference {expected}; most in flight {most}")
    print(f"  Envoy's bound {bound} (factor x average {factor / 100 * n / 3:.1f})")
    for key, landed, expected, most in rows:
        assert landed == expected, key
        assert max(most.values()) <= bound
        assert sum(1 for count in landed.values() if count) >= 2
        assert sum(landed.values()) == n
