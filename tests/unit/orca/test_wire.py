"""Every report reaches a client intact, in every form: read back by a transcription of Envoy's
parser (HTTP header) and by the protobuf (gRPC trailer)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given

from tests.unit.orca.envoy_parser import OrcaParseError, parse_headers
from tests.unit.orca.strategies import reports
from xdscp.errors import ValidationError
from xdscp.orca import HEADER, TRAILER, HeaderFormat, LoadReport, header_value, trailer


@given(reports())
def test_every_report_round_trips_through_json_and_bin(report: LoadReport) -> None:
    """JSON and BIN carry every field, the three maps included."""
    for form in (HeaderFormat.JSON, HeaderFormat.BIN):
        parsed = parse_headers({HEADER: header_value(report, form)})
        assert LoadReport.from_proto(parsed) == report


@given(reports(maps=False))
def test_every_report_round_trips_through_text(report: LoadReport) -> None:
    """TEXT carries the five numbers and the named metrics, exactly (shortest repr)."""
    parsed = parse_headers({HEADER: header_value(report, HeaderFormat.TEXT)})
    assert LoadReport.from_proto(parsed) == report


@given(reports())
def test_every_report_round_trips_through_the_trailer(report: LoadReport) -> None:
    """The gRPC trailer is binary metadata holding the serialized proto; Envoy reads it
    base64'd from an HTTP upstream too."""
    ((key, value),) = trailer(report)
    assert key == TRAILER
    assert LoadReport.from_proto(type(report.to_proto()).FromString(value)) == report
    parsed = parse_headers({TRAILER: base64.b64encode(value).decode()})
    assert LoadReport.from_proto(parsed) == report


def test_the_text_form_is_envoys() -> None:
    """The exact spelling: `TEXT name=value,...`, unset numbers left out."""
    report = LoadReport(cpu_utilization=0.3, rps_fractional=10, named_metrics={"foo": 1})
    assert (
        header_value(report) == "TEXT cpu_utilization=0.3,rps_fractional=10.0,named_metrics.foo=1.0"
    )
    assert header_value(report, HeaderFormat.JSON) == (
        'JSON {"cpu_utilization":0.3,"rps_fractional":10.0,"named_metrics":{"foo":1.0}}'
    )


def test_an_empty_report_still_has_a_text_form() -> None:
    """`TEXT ` alone would lose its space to HTTP stacks (an unknown format to Envoy)."""
    value = header_value(LoadReport())
    assert value == "TEXT rps_fractional=0.0"
    assert parse_headers({HEADER: value.strip()}) == type(LoadReport().to_proto())()


def test_text_refuses_the_maps_it_cannot_carry() -> None:
    """`utilization` and `request_cost` have no TEXT names: an error, not a silent loss."""
    with pytest.raises(ValidationError, match="utilization: has no TEXT form"):
        header_value(LoadReport(utilization={"a": 0.5}), HeaderFormat.TEXT)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("TEXT cpu_utilization=nan", "cannot be NaN"),
        ("TEXT cpu_utilization=inf", "cannot be infinity"),
        ("TEXT cpu_utilization=0.1,cpu_utilization=0.2", "duplicate metric"),
        ("TEXT named_metrics.=1", "named metric key is empty"),
        ("TEXT bogus", "metric values cannot be empty"),
        ("XML <a/>", "unsupported ORCA header format: XML"),
        ("BIN !!", "unable to decode"),
        ('JSON {"nope": 1}', "invalid JSON"),
    ],
)
def test_the_transcribed_parser_refuses_what_envoy_refuses(value: str, error: str) -> None:
    """The transcription is not a pass-through: Envoy's own error cases fail here too."""
    with pytest.raises(OrcaParseError, match=error):
        parse_headers({HEADER: value})


def test_an_empty_report_is_never_an_empty_binary() -> None:
    """Envoy refuses an empty BIN value or trailer; an all-zero report still says something."""
    empty = LoadReport()
    assert header_value(empty, HeaderFormat.BIN) != "BIN "
    assert parse_headers({HEADER: header_value(empty, HeaderFormat.BIN)}) == empty.to_proto()
    ((_, value),) = trailer(empty)
    assert value
    assert type(empty.to_proto()).FromString(value) == empty.to_proto()
