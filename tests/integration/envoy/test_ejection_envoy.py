"""Outlier ejection with 3 backends through a real Envoy: the README's and the demo's policy
(`xdscp.demo.failure.GUARDED`: consecutive_5xx 3, `always_eject_one_host`, 2 retries) ejects
the failing backend, while the same policy without `always_eject_one_host` cannot (Envoy's
default max_ejection_percent 10 is less than one host of 3: `ejections_overflow`). A host
ejected again just after it came back is kept out too: xdscp's clusters set no update merge
window, which in Envoy's default (1 s) held that second ejection back from the workers.

Figures are printed (run with `-s`). Every wait is on Envoy's own stats, never a sleep.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.harness.plane import EnvoyStarter, Plane, endpoints_on
from tests.harness.traffic import envoy_stats, host_flags, send, serving
from xdscp.demo.backend import Backend
from xdscp.demo.failure import GUARDED
from xdscp.model import Service
from xdscp.procs.envoy import EnvoyProcess

pytestmark = pytest.mark.envoy

OUTLIER = "cluster.web.outlier_detection."
MAX_REQUESTS = 60  # one in three reaches the failing backend: 3 failures take about 9


def _service(backends: list[Backend], always_eject_one_host: bool) -> Service:
    assert GUARDED.outlier_detection is not None
    outlier = dataclasses.replace(
        GUARDED.outlier_detection, always_eject_one_host=always_eject_one_host
    )
    policy = dataclasses.replace(GUARDED, outlier_detection=outlier)
    return Service("web", endpoints_on(backends), policy)


async def _until_stat(plane: Plane, proxy: EnvoyProcess, stat: str) -> tuple[int, int]:
    """Requests one at a time until Envoy's outlier `stat` is at least 1: (requests, errors)."""
    sent = errors = 0
    while (await envoy_stats(proxy, OUTLIER + stat)).get(OUTLIER + stat, 0) == 0:
        assert sent < MAX_REQUESTS, f"no {stat} after {sent} requests"
        status, _, _ = (await send(plane, 1))[0]
        sent, errors = sent + 1, errors + (status != 200)
    return sent, errors


async def test_readme_policy_ejects_one_of_three_backends(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """GUARDED with 3 backends: the failing one is ejected after its 3 failures (one more at
    most, in flight), retries hide them, and then it receives none of 30 requests."""
    proxy = await serving(plane, envoy, _service(backends[:3], always_eject_one_host=True))
    bad = backends[1]
    bad.faults.fail(503)
    sent, errors = await _until_stat(plane, proxy, "ejections_enforced_total")
    failed_until = bad.faults.failed
    after = await send(plane, 30)
    stats = await envoy_stats(proxy, OUTLIER)
    flags = await host_flags(proxy, bad.http_port)
    print(
        f"\nalways_eject_one_host, 3 backends: ejected after {sent} requests, the failing"
        f" backend failed {failed_until} (threshold 3), client errors {errors}; then"
        f" {bad.faults.failed - failed_until} of 30 reached it, errors"
        f" {sum(s != 200 for s, _, _ in after)}; flags {flags};"
        f" enforced {stats.get(OUTLIER + 'ejections_enforced_total')},"
        f" overflow {stats.get(OUTLIER + 'ejections_overflow')}"
    )
    assert 3 <= failed_until <= 4
    assert errors == 0
    assert bad.faults.failed == failed_until
    assert [status for status, _, _ in after] == [200] * 30
    assert "failed_outlier_check" in flags
    assert stats[OUTLIER + "ejections_enforced_total"] == 1
    assert stats[OUTLIER + "ejections_active"] == 1
    assert stats.get(OUTLIER + "ejections_overflow", 0) == 0


async def test_without_always_eject_one_host_nothing_is_ejected(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """The same policy without `always_eject_one_host` (max_ejection_percent 10, one host of
    3 is 33 %): Envoy detects the failing backend but ejects nothing (`ejections_overflow`),
    and the backend keeps receiving its third of the requests."""
    proxy = await serving(plane, envoy, _service(backends[:3], always_eject_one_host=False))
    bad = backends[1]
    bad.faults.fail(503)
    sent, errors = await _until_stat(plane, proxy, "ejections_overflow")
    after = await send(plane, 30)
    stats = await envoy_stats(proxy, OUTLIER)
    flags = await host_flags(proxy, bad.http_port)
    print(
        f"\nmax_ejection_percent 10, 3 backends: overflow after {sent} requests; the failing"
        f" backend failed {bad.faults.failed} in all; flags {flags};"
        f" enforced {stats.get(OUTLIER + 'ejections_enforced_total', 0)},"
        f" overflow {stats.get(OUTLIER + 'ejections_overflow')}"
    )
    assert errors == 0  # the retries still hide the failures
    assert [status for status, _, _ in after] == [200] * 30
    assert stats.get(OUTLIER + "ejections_enforced_total", 0) == 0
    assert stats.get(OUTLIER + "ejections_active", 0) == 0
    assert "failed_outlier_check" not in flags
    assert bad.faults.failed >= sent // 3


@pytest.mark.parametrize("second", [1, 2], ids=["same-host", "another-host"])
async def test_a_second_ejection_keeps_the_host_out(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter, second: int
) -> None:
    """GUARDED: b1 fails, is ejected, recovers and is taken back; then b1 again, or b2, fails
    at once and is ejected within a second of b1's return: while flagged ejected, the host
    receives none of 30 requests either time. With Envoy's default `update_merge_window`
    (1 s) that second ejection waited for the end of the second to reach the workers, and
    the host kept its round-robin turn meanwhile: 15 of the 30 (each retried elsewhere)."""
    proxy = await serving(plane, envoy, _service(backends[:3], always_eject_one_host=True))
    received = []
    for bad in (backends[1], backends[second]):
        bad.faults.fail(503)
        while "failed_outlier_check" not in await host_flags(proxy, bad.http_port):
            await send(plane, 1)
        before = bad.faults.failed
        await send(plane, 30)
        received.append(bad.faults.failed - before)
        assert "failed_outlier_check" in await host_flags(proxy, bad.http_port)
        bad.faults.recover()
        while not received[1:] and "failed_outlier_check" in await host_flags(proxy, bad.http_port):
            await send(plane, 1)
    merges = await envoy_stats(proxy, "cluster_manager.")
    print(
        f"\nrequests reaching the ejected backend: first ejection, second (b{second}):"
        f" {received}; updates merged {merges.get('cluster_manager.cluster_updated_via_merge')},"
        f" out of a merge window {merges.get('cluster_manager.update_out_of_merge_window')}"
    )
    assert received == [0, 0]
    # Envoy consulted no merge window at all (it counts an update out of the window only
    # when one is set): every health change went to the workers as it happened.
    assert merges["cluster_manager.cluster_updated_via_merge"] == 0
    assert merges["cluster_manager.update_out_of_merge_window"] == 0
    stats = await envoy_stats(proxy, OUTLIER)
    assert stats[OUTLIER + "ejections_enforced_total"] == 2
