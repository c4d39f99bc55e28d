"""The failure scene's verdicts, its table, and its wait for Envoy's ejection, driven by a
real demo backend that fails and a stand-in for Envoy's stats."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest
from rich.console import Console

from xdscp.demo.admin import AdminClient
from xdscp.demo.backend import Backend, BackendConfig
from xdscp.demo.failure import (
    MAX_UNTIL_EJECTED,
    THRESHOLD,
    FailureOutcome,
    Step,
    _Scene,
    scene_requests,
)
from xdscp.demo.report import failure_table
from xdscp.demo.tour import TourSetup
from xdscp.errors import ProcessError
from xdscp.etcd import EtcdClient
from xdscp.registry import RegistryLayout
from xdscp.translate import TranslateOptions

THIRDS = {"b1": 30.0, "b2": 0.0, "b3": 30.0}


def _step(**changes: Any) -> Step:
    values: dict[str, Any] = {
        "label": "no policy", "requests": 90, "answered": {"b1": 30, "b3": 30},
        "predicted": THIRDS, "errors": 30, "predicted_errors": 30.0, "failing_received": 30,
        "predicted_failing": 30.0, "failing_range": (28.5, 31.5),
    }  # fmt: skip
    return Step(**(values | changes))


def test_a_step_holds_within_a_rotation_and_zero_means_zero() -> None:
    """Counts predicted from a rotation may be off by its position (1.5); a count predicted
    0 (errors, or requests to an ejected backend) must be 0; every request is accounted."""
    assert _step().ok
    assert _step(answered={"b1": 31, "b3": 29}, errors=30).ok
    assert not _step(answered={"b1": 32, "b3": 30}, errors=28).ok
    ejected = _step(answered={"b1": 45, "b3": 45}, predicted={"b1": 45.0, "b2": 0.0, "b3": 45.0},
                    errors=0, predicted_errors=0.0, failing_received=0, predicted_failing=0.0,
                    failing_range=(0.0, 0.0))  # fmt: skip
    assert ejected.ok
    assert not replace(ejected, answered={"b1": 45, "b3": 44}, errors=1).ok
    assert not replace(ejected, failing_received=1).ok
    assert not _step(answered={"b1": 30, "b3": 30, "b2": 1}, errors=30).ok  # 91 answers of 90


def test_the_threshold_step_allows_one_request_in_flight_and_no_other() -> None:
    """Until ejected: the failing backend received the threshold or one more."""
    until = {"predicted": {}, "errors": 0, "predicted_errors": 0.0, "predicted_failing": 3.0,
             "failing_range": (3, 4), "answered": {"b1": 2, "b3": 3}, "requests": 5}  # fmt: skip
    assert [_step(**until, failing_received=n).ok for n in (2, 3, 4, 5)] == [
        False, True, True, False,
    ]  # fmt: skip


def _outcome(enforced: int = 1, active: int = 1, steps: tuple[Step, ...] = ()) -> FailureOutcome:
    return FailureOutcome("b2", "127.0.0.1:2", steps or (_step(),) * 4, enforced, active, 5.4)


def test_the_scene_needs_exactly_one_active_ejection() -> None:
    """No ejection, two, or one already over when read: the scene failed."""
    assert _outcome().ok
    assert not _outcome(enforced=0).ok
    assert not _outcome(enforced=2).ok
    assert not _outcome(active=0).ok
    assert not _outcome(steps=(_step(), _step(errors=1), _step(), _step())).ok


def test_the_table_shows_each_step_measured_beside_predicted() -> None:
    """The table names the steps, the failing backend and the verdict's figures."""
    console = Console(width=120, record=True)
    console.print(failure_table(_outcome()))
    text = console.export_text()
    assert "failure scene: b2 answers 503" in text
    for label in ("no policy", "until ejected", "ejected", "recovered"):
        assert label in text
    assert "30/30" in text
    assert "no policy: 30/90 requests failed (predicted 30)" in text
    assert "ejections_enforced_total +1" in text
    assert "✓" in text
    broken = Console(width=120, record=True)
    broken.print(failure_table(_outcome(enforced=0)))
    assert "✗ prediction missed" in broken.export_text()


def test_scene_requests_stay_between_30_and_90() -> None:
    """The scene's batches: the tour's count, within [30, 90], a multiple of 3."""
    assert [scene_requests(n) for n in (1, 20, 30, 61, 90, 300)] == [30, 30, 30, 60, 90, 90]


class EjectingStats:
    """Envoy's outlier stats stand-in: one ejection once the backend has failed `after`
    requests (never when `after` is None)."""

    xdscp_port = 1

    def __init__(self, backend: Backend, after: int | None) -> None:
        self.backend, self.after = backend, after

    async def envoy_stats(self, prefix: str) -> dict[str, int]:
        ejected = self.after is not None and self.backend.faults.failed >= self.after
        return {f"{prefix}ejections_enforced_total": int(ejected)}


async def _until(after: int | None) -> Step:
    backend = Backend(BackendConfig("b2", grpc_port=-1))
    await backend.start()
    try:
        backend.faults.fail(503)
        setup = TourSetup(
            etcd=cast("EtcdClient", None), admin=cast("AdminClient", EjectingStats(backend, after)),
            service="web", listener_port=backend.http_port, translate=TranslateOptions(),
            layout=RegistryLayout(), names={f"127.0.0.1:{backend.http_port}": "b2"}, requests=30,
        )  # fmt: skip
        return await _Scene(setup, f"127.0.0.1:{backend.http_port}", 30).until_ejected(0)
    finally:
        await backend.stop()


async def test_until_ejected_stops_at_the_ejection_and_counts_what_the_backend_got() -> None:
    """Requests (here straight to the failing backend: every one fails) go one at a time
    until the stats count the ejection; the backend's own count is the step's."""
    step = await _until(THRESHOLD)
    assert (step.requests, step.failing_received, step.errors) == (3, 3, 3)
    assert not step.ok  # no retries here: the client saw the errors


async def test_no_ejection_fails_the_scene_saying_why() -> None:
    """Envoy never ejecting: the scene stops after its limit, naming the backend and count."""
    with pytest.raises(ProcessError, match=f"did not eject b2 after {MAX_UNTIL_EJECTED}"):
        await _until(None)
