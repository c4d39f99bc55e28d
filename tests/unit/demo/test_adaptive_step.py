"""The demo's adaptive step, without processes: when xdscp's weights count as converged, that
the demo's settings make each change one exact push, the loop's predicted seconds, the
waits' failure and re-measure paths, and what it prints and writes."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from xdscp.balancer.capacity import converged_service
from xdscp.demo import adaptive
from xdscp.demo.adaptive import (
    ADAPTIVE_POLICY,
    SETTINGS,
    WEIGHT_BAND,
    AdaptiveOutcome,
    AdaptivePhase,
    converged,
    model_seconds,
)
from xdscp.demo.load import CAPACITIES, SHARE_BOUND
from xdscp.demo.load_report import adaptive_json, adaptive_summary, adaptive_table
from xdscp.demo.stack import (
    LOAD_REPORT_INTERVAL_S,
    WEIGH_INTERVAL_S,
    DemoBackend,
    Stack,
    StackOptions,
)
from xdscp.demo.tour import REFERENCE_PICKS, Applied, BackendRow, TourSetup, predict_shares
from xdscp.errors import ProcessError
from xdscp.load import AdaptiveWeights, LoadSample
from xdscp.load.adaptive import whole_weights
from xdscp.model import Endpoint, Service
from xdscp.translate import TranslateOptions, envoy_service_resources

KEYS = ("127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")
BEFORE = dict(zip(KEYS, CAPACITIES.values(), strict=True))
AFTER = {**BEFORE, KEYS[0]: 400.0}
NAMES = dict(zip(KEYS, ("b1", "b2", "b3"), strict=True))


@given(scale=st.floats(0.3, 100))
def test_weights_in_the_capacities_ratios_served_and_held_are_converged(scale: float) -> None:
    weights = {k: max(1, round(c * scale)) for k, c in BEFORE.items()}
    assert converged(weights, dict(weights), BEFORE)


@pytest.mark.parametrize(
    ("held", "served"),
    [
        ({KEYS[0]: 250, KEYS[1]: 500, KEYS[2]: 1000}, None),  # xdscp computes none yet
        ({KEYS[0]: 250, KEYS[1]: 500, KEYS[2]: 1000}, {KEYS[0]: 1000, KEYS[1]: 1000,
                                                       KEYS[2]: 1000}),  # Envoy behind
        ({KEYS[0]: 250, KEYS[1]: 500}, {KEYS[0]: 250, KEYS[1]: 500}),  # a host missing
        ({KEYS[0]: 1000, KEYS[1]: 1000, KEYS[2]: 1000},) * 2,  # the registered weights
        ({KEYS[0]: 320, KEYS[1]: 500, KEYS[2]: 1000},) * 2,  # b1's share 0.176: 0.033 off
    ],
)  # fmt: skip
def test_weights_not_held_or_off_the_shares_are_not_converged(
    held: dict[str, int], served: dict[str, int] | None
) -> None:
    assert not converged(held, served, BEFORE)


def test_the_band_is_on_each_share() -> None:
    inside = {KEYS[0]: 300, KEYS[1]: 500, KEYS[2]: 1000}  # b1's share 0.1667: 0.024 off
    assert converged(inside, dict(inside), BEFORE)


def _sample(key: str, at: float, share: float, capacity: float) -> LoadSample:
    return LoadSample(key, at, share, share / capacity, since=at - LOAD_REPORT_INTERVAL_S)


def test_the_demo_settings_make_each_change_one_exact_push() -> None:
    """From equal weights, one push reaches the capacities' weights (max_step 4); after b1's
    capacity changes, one push reaches the new ones; the next decision keeps them."""
    loop = AdaptiveWeights(SETTINGS, dict.fromkeys(KEYS, 1))
    assert loop.decide(0.0) is not None  # the policy set: the registered weights
    for key in KEYS:
        loop.observe(_sample(key, 4.0, 1 / 3, BEFORE[key]))
    assert loop.decide(4.25) is None  # min_push_interval
    first = loop.decide(SETTINGS.min_push_interval_s)
    assert first is not None
    assert dict(first.weights) == {KEYS[0]: 250, KEYS[1]: 500, KEYS[2]: 1000}
    held = {k: w / 1750 for k, w in first.weights.items()}
    for key in KEYS:
        loop.observe(_sample(key, 7.0, held[key], AFTER[key]))
    second = loop.decide(9.0)
    assert second is not None
    assert dict(second.weights) == {KEYS[0]: 1000, KEYS[1]: 500, KEYS[2]: 1000}
    for key in KEYS:
        loop.observe(_sample(key, 13.0, second.weights[key] / 2500, AFTER[key]))
    assert loop.decide(13.5) is None  # nothing moves by the hysteresis


def test_the_loop_model_waits_for_the_push_interval_then_for_a_report() -> None:
    """The policy set: the first computed push comes min_push_interval later; after a change,
    at the first decision both past that interval and after a whole report."""
    assert model_seconds(BEFORE) == SETTINGS.min_push_interval_s
    assert model_seconds(BEFORE, AFTER, since_push=1.0) == SETTINGS.min_push_interval_s - 1.0
    assert model_seconds(BEFORE, AFTER, since_push=30.0) == LOAD_REPORT_INTERVAL_S


@given(since=st.floats(0.0, 20.0))
def test_the_model_after_a_change_is_the_later_of_push_interval_and_report(since: float) -> None:
    ticked = round(since / WEIGH_INTERVAL_S) * WEIGH_INTERVAL_S
    expected = max(SETTINGS.min_push_interval_s - ticked, LOAD_REPORT_INTERVAL_S)
    assert model_seconds(BEFORE, AFTER, since_push=since) == pytest.approx(expected)


def test_prediction_after_the_change_is_two_fifths_one_fifth_two_fifths() -> None:
    service = Service(
        "web", tuple(Endpoint("127.0.0.1", int(k[-4:])) for k in KEYS), policy=ADAPTIVE_POLICY
    )
    ideal = converged_service(service, AFTER)
    picks = predict_shares(
        Applied(ideal, envoy_service_resources(ideal, TranslateOptions()), 0.0).reference()
    )
    assert [picks[k] / REFERENCE_PICKS for k in KEYS] == pytest.approx([0.4, 0.2, 0.4], abs=1e-3)


def test_the_demos_plane_reports_every_second_and_decides_every_quarter(tmp_path: Path) -> None:
    stack = Stack(StackOptions(tmp_path, [DemoBackend("b1", 1, 100.0)]))
    args = stack.plane.args
    assert args[args.index("--load-report-interval") + 1] == f"{LOAD_REPORT_INTERVAL_S:g}"
    assert stack.plane.env == {"XDSCP_XDS__WEIGH_INTERVAL": f"{WEIGH_INTERVAL_S:g}"}
    assert all(not b.env for b in stack.backends)


class FakeAdmin:
    """xdscp's served weights and Envoy's, one pair per look (the last one for ever after)."""

    xdscp_port = 18001

    def __init__(self, looks: list[dict[str, int]]) -> None:
        self.looks = looks
        self.envoy_reads = 0

    def _look(self, reads: int) -> dict[str, int]:
        return self.looks[min(reads, len(self.looks) - 1)]

    async def envoy_weights(self, _service: str) -> dict[str, int]:
        self.envoy_reads += 1
        return self._look(self.envoy_reads - 1)

    async def served_weights(self, _service: str) -> dict[str, int]:
        return self._look(self.envoy_reads - 1)

    async def adaptive_pushes(self, _service: str) -> int:
        return self.envoy_reads


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Requests are answered in the capacities' ratio 1 : 2 : 4, without Envoy; the counts
    of each send."""
    counts: list[int] = []

    async def send(_setup: Any, requests: list[Any]) -> list[str]:
        counts.append(len(requests))
        n = len(requests)
        return ["b1"] * (n // 7) + ["b2"] * (2 * n // 7) + ["b3"] * (n - n // 7 - 2 * n // 7)

    monkeypatch.setattr(adaptive, "send_through_envoy", send)
    return counts


def _setup(admin: FakeAdmin) -> TourSetup:
    return TourSetup(
        etcd=cast(Any, None), admin=cast(Any, admin), service="web", listener_port=10000,
        translate=TranslateOptions(), layout=cast(Any, None), names=NAMES, requests=100,
    )  # fmt: skip


SERVICE = Service(
    "web", tuple(Endpoint("127.0.0.1", int(k[-4:])) for k in KEYS), policy=ADAPTIVE_POLICY
)
EQUAL = dict.fromkeys(KEYS, 1000)
TARGET = {KEYS[0]: 250, KEYS[1]: 500, KEYS[2]: 1000}


async def test_a_convergence_that_never_comes_fails_saying_what_and_where(
    sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adaptive, "PHASE_TIMEOUT_S", 0.0)
    with pytest.raises(ProcessError) as failed:
        await adaptive._phase(
            _setup(FakeAdmin([EQUAL])), SERVICE, BEFORE, since=0.0, pushed=0, model=4.5
        )
    message = str(failed.value)
    assert "did not reach the capacities' shares" in message
    assert "/debug/weights" in message
    assert sent == [adaptive.BATCH]  # one batch, then the deadline


async def test_a_push_inside_the_window_measures_again(sent: list[int]) -> None:
    """Converged, but the weights moved while the window was sent: waited for and measured
    again; the phase reports the weights held over the window it counts."""
    moved = {KEYS[0]: 251, KEYS[1]: 500, KEYS[2]: 1000}
    admin = FakeAdmin([EQUAL, TARGET, moved])  # looks: batch, window (moved), batch, window
    phase, _ = await adaptive._phase(
        _setup(admin), SERVICE, BEFORE, since=time.monotonic(), pushed=0, model=4.5
    )
    assert sent == [adaptive.BATCH, adaptive.BATCH, adaptive.WINDOW, adaptive.BATCH,
                    adaptive.WINDOW]  # fmt: skip
    assert {r.endpoint: r.weight for r in phase.rows} == moved
    assert phase.ok
    assert [r.measured for r in phase.rows] == [100, 200, 400]


def _phase(measured: tuple[int, int, int], errors: int = 0, pushes: int = 1) -> AdaptivePhase:
    rows = tuple(
        BackendRow(NAMES[k], k, w, m, p)
        for k, w, m, p in zip(KEYS, (249, 499, 1000), measured, (1 / 7, 2 / 7, 4 / 7),
                              strict=True)
    )  # fmt: skip
    return AdaptivePhase(dict(CAPACITIES), rows, sum(measured) + errors, errors, 4.8, pushes, 4.5)


def test_a_phase_matches_within_the_bound_and_only_then() -> None:
    assert _phase((100, 200, 400)).ok
    off = round(700 * (SHARE_BOUND + 0.01))
    assert not _phase((100 + off, 200 - off, 400)).ok
    assert not _phase((100, 200, 399), errors=1).ok
    assert not AdaptiveOutcome(ADAPTIVE_POLICY, (_phase((100, 200, 400)),)).ok
    assert WEIGHT_BAND < SHARE_BOUND  # converged weights leave room for the rotation


def test_tables_and_json_say_what_xdscp_computed_beside_the_prediction() -> None:
    phases = (_phase((100, 200, 400), pushes=2), _phase((99, 201, 400)))
    outcome = AdaptiveOutcome(ADAPTIVE_POLICY, phases, 10.2)
    out = io.StringIO()
    console = Console(file=out, width=80)
    for table in adaptive_table(outcome):
        console.print(table)
    text = out.getvalue()
    assert "[adaptive 1/2] weighted_round_robin + adaptive_weights: capacities 1 : 2 : 4" in text
    assert "[adaptive 2/2] weighted_round_robin + adaptive_weights: b1 now 400/s" in text
    assert "14.3 %" in text
    assert " 1000 " in text
    assert "4.8 s after the policy was set, 2 pushes (xdscp's loop: 4.5 s)" in " ".join(
        text.split()
    )
    assert "4.8 s after the change, 1 push" in " ".join(text.split())
    assert "…" not in text  # nothing cut at 80 columns
    document = json.loads(json.dumps(adaptive_json(outcome)))
    assert document["ok"]
    assert document["policy"] == "weighted_round_robin"
    assert document["adaptive_weights"]["min_push_interval"] == SETTINGS.min_push_interval
    assert [b["weight"] for b in document["phases"][0]["backends"]] == [249, 499, 1000]
    assert document["phases"][0]["pushes"] == 2
    assert adaptive_json(None) is None
    assert "2/2 capacity settings matched the prediction (adaptive step, 10.2 s)" in (
        adaptive_summary(outcome)
    )
    missed = AdaptiveOutcome(ADAPTIVE_POLICY, (phases[0], _phase((300, 0, 400))))
    assert "✗[/] 1/2 capacity settings matched" in adaptive_summary(missed)


def test_whole_weights_of_the_capacities_are_the_pushed_target() -> None:
    assert whole_weights(BEFORE) == TARGET
