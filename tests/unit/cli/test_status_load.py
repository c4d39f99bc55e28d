"""`xdscp status`'s load table: each reporting service's endpoints with the weight served,
the predicted share, the measured share and rps; services without reports are counted."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from xdscp.cli.status import render_load


def _text(value: Any) -> str:
    console = Console(width=160, record=True)
    console.print(value)
    return console.export_text()


def _endpoint(key: str, weight: int, **load: float | None) -> dict[str, Any]:
    return {"key": key, "weight": weight, "measured_rps": None, "measured_share": None,
            "predicted_share": None, **load}  # fmt: skip


def test_only_services_with_reported_load_are_rows() -> None:
    services = [
        {"name": "web", "load": {"rps": 40.0, "predicted_by": {"envoy": 1.0}}, "endpoints": [
            _endpoint("10.0.0.1:80", 1, measured_rps=10.0, measured_share=0.25,
                      predicted_share=0.3333),
            _endpoint("10.0.0.2:80", 2, measured_rps=30.0, measured_share=0.75,
                      predicted_share=0.6667),
        ]},
        {"name": "quiet", "load": {"rps": None, "predicted_by": None},
         "endpoints": [_endpoint("10.0.0.9:80", 1)]},
    ]  # fmt: skip
    text = _text(render_load(services))
    assert "measured load of 1 of 2 service(s)" in text
    rows = [line.split("│")[1:-1] for line in text.splitlines() if "10.0.0." in line]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["web", "10.0.0.1:80", "1", "33.3 %", "25.0 %", "10.0"],
        ["web", "10.0.0.2:80", "2", "66.7 %", "75.0 %", "30.0"],
    ]


def test_no_reports_is_one_line() -> None:
    services = [{"name": "web", "load": {"rps": None}, "endpoints": [_endpoint("a:1", 1)]}]
    assert render_load(services) == "no load reported yet for any of 1 service(s)"


def test_the_caption_says_whose_prediction_each_service_shows() -> None:
    services = [
        {"name": "web", "load": {"rps": 40.0, "predicted_by": {"envoy": 0.25, "grpc": 0.75}},
         "endpoints": [_endpoint("10.0.0.1:80", 1, measured_rps=40.0, measured_share=1.0,
                                 predicted_share=1.0)]},
        {"name": "old", "load": {"rps": 1.0, "predicted_by": "envoy"},
         "endpoints": [_endpoint("10.0.0.2:80", 1, measured_rps=1.0, measured_share=1.0)]},
    ]  # fmt: skip
    text = " ".join(_text(render_load(services)).split())
    assert (
        "predicted for the clients that reported: web (envoy 25.0 %, grpc 75.0 %); "
        "old (envoy 100.0 %)"
    ) in text
