"""The fan-out report arithmetic: spans, medians, ratios to the baseline, the table."""

from __future__ import annotations

import math

import pytest

from bench.fanout import report


def result(server: str, n: int, change_s: list[float], rss: float) -> dict[str, object]:
    """A summarized run with fixed CPU figures."""
    return report.summarize(
        server,
        n,
        initial_s=2.0,
        changes_s=change_s,
        spreads_s=[x / 2 for x in change_s],
        cpu_initial_s=1.0,
        cpu_changes_s=[0.1, 0.3, 0.2],
        memory={"rss_mib": rss, "hwm_mib": rss * 2},
    )


def test_change_seconds() -> None:
    """The span is last ACK minus trigger; an ACK before the trigger is an error."""
    assert report.change_seconds(10.0, 10.25) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="precedes"):
        report.change_seconds(10.0, 9.0)


def test_summarize_takes_medians() -> None:
    """Repeated changes are reported by their median, the raw values kept."""
    summary = result("go", 100, [0.5, 0.1, 0.3, 0.9], 40.0)
    assert summary["change_s"] == pytest.approx(0.4)
    assert summary["changes_s"] == [0.5, 0.1, 0.3, 0.9]
    assert summary["cpu_change_s"] == pytest.approx(0.2)
    assert summary["spread_s"] == pytest.approx(0.2)
    assert math.isnan(report.median([]))


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [(3.0, 1.5, 2.0), (1.0, None, None), (1.0, 0.0, None), (math.nan, 1.0, None)],
)
def test_ratio(value: float, baseline: float | None, expected: float | None) -> None:
    """Ratios only against a positive baseline and a real value."""
    assert report.ratio(value, baseline) == expected


def test_with_baseline_matches_same_n() -> None:
    """Each run is compared with the baseline at its own N, and none exists for missing N."""
    runs = [
        result("baseline", 100, [0.1], 40.0),
        result("go", 100, [0.3], 20.0),
        result("go", 1000, [0.5], 20.0),
    ]
    out = report.with_baseline(runs)
    assert out[1]["vs_baseline"]["change_s"] == pytest.approx(3.0)
    assert out[1]["vs_baseline"]["rss_mib"] == pytest.approx(0.5)
    assert out[2]["vs_baseline"]["change_s"] is None


def test_table_shows_ratio_beside_non_baseline_figures() -> None:
    """Baseline rows show bare figures; others show (xR) in milliseconds for changes."""
    text = report.table([result("baseline", 100, [0.1], 40.0), result("go", 100, [0.3], 20.0)])
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["server", "N"]
    assert "100.0" in lines[1]
    assert "(x" not in lines[1]
    assert "300.0 (x3.00)" in lines[2]
    assert "150.0 (x3.00)" in lines[2]  # spread
    assert "20 (x0.50)" in lines[2]


@pytest.mark.parametrize(
    ("busy", "ours", "wall", "expected"),
    [(10.0, 6.0, 4.0, 1.0), (5.0, 6.0, 2.0, 0.0), (3.0, 0.0, 2.0, 1.5)],
)
def test_others_cores(busy: float, ours: float, wall: float, expected: float) -> None:
    """Other processes' cores = (machine busy - ours) / wall, never negative."""
    assert report.others_cores(busy, ours, wall) == pytest.approx(expected)


def test_others_cores_rejects_empty_interval() -> None:
    """A zero-length run has no average."""
    with pytest.raises(ValueError, match="positive"):
        report.others_cores(1.0, 0.0, 0.0)
