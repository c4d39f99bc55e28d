"""The demo's load-aware step, without processes: when Envoy's weights count as having the
capacities' ratios, what the prediction is, when a phase is judged matched, and what it prints
and writes."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from xdscp.balancer.capacity import converged_service
from xdscp.demo.load import (
    CAPACITIES,
    LOAD_POLICY,
    RATIO_BAND,
    SHARE_BOUND,
    LoadOutcome,
    LoadPhase,
    _close,
    model_seconds,
)
from xdscp.demo.load_report import load_json, load_summary, load_table
from xdscp.demo.tour import REFERENCE_PICKS, Applied, BackendRow, predict_shares
from xdscp.model import Endpoint, Service
from xdscp.translate import TranslateOptions, envoy_service_resources

KEYS = ("127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")
CAPACITY = dict(zip(KEYS, CAPACITIES.values(), strict=True))


@given(scale=st.floats(0.01, 1000), off=st.floats(-RATIO_BAND * 0.99, RATIO_BAND * 0.99))
def test_weights_in_the_capacities_ratios_at_any_scale_are_close(scale: float, off: float) -> None:
    weights = {k: max(1, round(c * 1000 * scale)) for k, c in CAPACITY.items()}
    weights[KEYS[2]] = round(weights[KEYS[2]] * (1 + off / 2))  # >= 1000: rounding is tiny
    assert _close(weights, CAPACITY)


@pytest.mark.parametrize(
    "weights",
    [
        {KEYS[0]: 1, KEYS[1]: 1, KEYS[2]: 1},  # before the blackout ends: all equal
        {KEYS[0]: 100, KEYS[1]: 200, KEYS[2]: 300},  # one off by a quarter
        {KEYS[0]: 100, KEYS[1]: 200},  # a host missing
        {KEYS[0]: 0, KEYS[1]: 0, KEYS[2]: 0},
    ],
)
def test_weights_off_the_ratios_are_not_close(weights: dict[str, int]) -> None:
    assert not _close(weights, CAPACITY)


def test_prediction_is_the_capacities_shares_through_the_reference_balancer() -> None:
    """simulate's converged service, translated and replayed: 1/7, 2/7, 4/7 to 0.1 %."""
    service = Service(
        "web", tuple(Endpoint("127.0.0.1", int(k[-4:])) for k in KEYS), policy=LOAD_POLICY
    )
    converged = converged_service(service, CAPACITY)
    resources = envoy_service_resources(converged, TranslateOptions())
    picks = predict_shares(Applied(converged, resources, 0.0).reference())
    shares = [picks[k] / REFERENCE_PICKS for k in KEYS]
    assert shares == pytest.approx([1 / 7, 2 / 7, 4 / 7], abs=0.001)


def test_the_reference_model_converges_within_seconds() -> None:
    before = dict(CAPACITY)
    after = {**before, KEYS[0]: 400.0}
    first, then = model_seconds(before, None), model_seconds(before, after)
    assert first is not None
    assert 1.0 <= first <= 3.0  # the 1 s blackout, then updates
    assert then is not None
    assert then <= 1.0  # no new blackout


def _phase(measured: tuple[int, int, int], errors: int = 0) -> LoadPhase:
    rows = tuple(
        BackendRow(f"b{i + 1}", k, 1, m, p)
        for i, (k, m, p) in enumerate(zip(KEYS, measured, (1 / 7, 2 / 7, 4 / 7), strict=True))
    )
    return LoadPhase(dict(CAPACITIES), rows, sum(measured) + errors, errors, 850, 1.2, 1.1)


def test_a_phase_matches_within_the_bound_and_only_then() -> None:
    assert _phase((100, 200, 400)).ok
    off = round(700 * (SHARE_BOUND + 0.01))
    assert not _phase((100 + off, 200 - off, 400)).ok
    assert not _phase((100, 200, 399), errors=1).ok
    assert not LoadOutcome(LOAD_POLICY, (_phase((100, 200, 400)),), 0.0).ok  # one phase


def test_tables_and_json_say_what_was_measured_beside_the_prediction() -> None:
    outcome = LoadOutcome(LOAD_POLICY, (_phase((100, 200, 400)), _phase((99, 201, 400))), 0.0)
    out = io.StringIO()
    console = Console(file=out, width=80)
    for table in load_table(outcome):
        console.print(table)
    text = out.getvalue()
    assert "[load 1/2] client_side_weighted_round_robin: weights 1, capacities 1 : 2 : 4" in text
    assert "b1 now 400/s" in text
    assert "14.3 %" in text
    assert "57.1 %" in text
    assert "after 850 requests, 1.2 s (reference model: 1.1 s)" in text
    assert "…" not in text  # nothing cut at 80 columns
    document = json.loads(json.dumps(load_json(outcome)))
    assert document["ok"]
    assert document["bound"] == SHARE_BOUND
    assert [b["measured"] for b in document["phases"][1]["backends"]] == [99, 201, 400]
    assert load_json(None) is None
    assert "2/2 capacity settings matched" in load_summary(outcome)
    missed = LoadOutcome(LOAD_POLICY, (_phase((100, 200, 400)), _phase((300, 0, 400))), 0.0)
    assert "✗[/] 1/2 capacity settings matched" in load_summary(missed)
