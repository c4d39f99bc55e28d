"""Many clients' load reports, summed per endpoint, bounded whatever they send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.load import EndpointLoad, LoadBook, LoadReport, implausible


def _known(cluster: str, endpoint: str) -> bool:
    return cluster == "web" and endpoint in {"10.0.0.1:80", "10.0.0.2:80"}


def _record(book: LoadBook, node: str, interval: float, load: EndpointLoad, at: float) -> None:
    book.record(node, LoadReport(node, interval, (load,)), at, _known)


def test_clients_rates_add_up_and_the_utilization_is_the_backends_mean() -> None:
    book = LoadBook(stale_after_s=30)
    _record(book, "envoy-a", 10.0, EndpointLoad("web", "10.0.0.1:80", 90, 10, 40.0, 100), 1.0)
    _record(book, "grpc-b", 5.0, EndpointLoad("web", "10.0.0.1:80", 50, 0, 30.0, 50), 2.0)
    (sample,) = book.samples(3.0)["web"]
    assert sample.endpoint == "10.0.0.1:80"
    assert sample.rps == pytest.approx(10 + 10)
    assert sample.eps == pytest.approx(1)
    assert sample.utilization == pytest.approx(70 / 150)
    assert sample.at == 2.0


def test_a_clients_next_report_replaces_its_last() -> None:
    book = LoadBook(stale_after_s=30)
    for at, successful in ((1.0, 100), (11.0, 300)):
        load = EndpointLoad("web", "10.0.0.2:80", successful, 0, 0.5 * successful, successful)
        book.record("envoy-a#1", LoadReport("envoy-a", 10.0, (load,)), at, _known)
    assert [s.rps for s in book.samples(12.0)["web"]] == [30.0]
    assert len(book) == 1


def test_unknown_endpoints_and_bad_intervals_are_refused_and_counted() -> None:
    book = LoadBook(stale_after_s=30)
    stranger = EndpointLoad("other", "10.0.0.1:80", 5, 0)
    book.record("n", LoadReport("n", 10.0, (stranger, stranger)), 1.0, _known)
    _record(book, "n", float("nan"), EndpointLoad("web", "10.0.0.1:80", 5, 0), 1.0)
    _record(book, "n", 10.0, EndpointLoad("web", "10.0.0.1:80", -5, 0), 1.0)
    assert book.refused == {"unknown_endpoint": 2, "interval": 1, "implausible": 1}
    assert len(book) == 0


def test_a_closed_stream_and_old_reports_stop_counting_even_for_one_node_id() -> None:
    book = LoadBook(stale_after_s=30)
    load = EndpointLoad("web", "10.0.0.1:80", 100, 0, 50.0, 100)
    book.record("a#1", LoadReport("a", 10.0, (load,)), 0.0, _known)
    book.record("a#2", LoadReport("a", 10.0, (load,)), 20.0, _known)
    assert [s.rps for s in book.samples(25.0)["web"]] == [20.0]
    book.forget("a#2")
    assert [s.rps for s in book.samples(25.0)["web"]] == [10.0]
    assert book.samples(31.0) == {}
    assert len(book) == 0


def test_without_a_utilization_an_endpoint_gives_no_sample() -> None:
    book = LoadBook(stale_after_s=30)
    book.record(
        "a#1", LoadReport("a", 10.0, (EndpointLoad("web", "10.0.0.1:80", 100, 0),)), 0.0, _known
    )
    assert book.samples(1.0) == {}


hostile_loads = st.builds(
    EndpointLoad,
    cluster=st.sampled_from(["web", "other", "\x00", "w" * 300]),
    endpoint=st.text(max_size=20) | st.sampled_from(["10.0.0.1:80", "10.0.0.2:80"]),
    successful=st.integers(-(2**63), 2**64),
    errors=st.integers(-(2**63), 2**64),
    utilization_total=st.floats(allow_nan=True, allow_infinity=True),
    utilization_requests=st.integers(-(2**63), 2**64),
)
hostile_reports = st.builds(
    LoadReport,
    node=st.text(max_size=8),
    interval_s=st.floats(allow_nan=True, allow_infinity=True),
    loads=st.lists(hostile_loads, max_size=5).map(tuple),
)


@given(st.lists(hostile_reports, max_size=30))
def test_hostile_reports_stay_bounded_and_every_sample_is_plausible(
    reports: list[LoadReport],
) -> None:
    book = LoadBook(stale_after_s=30, max_entries=4)
    for i, report in enumerate(reports):
        book.record(report.node, report, float(i), _known)
        assert len(book) <= 4
    for samples in book.samples(float(len(reports))).values():
        for sample in samples:
            assert implausible(sample) is None
            assert _known("web", sample.endpoint)


def test_a_sample_says_when_the_interval_it_covers_began() -> None:
    """Summed over clients, from the earliest start: the computed weights skip a sample
    begun before their last push (xdscp.load.adaptive)."""
    book = LoadBook(stale_after_s=100.0)
    _record(book, "envoy-a", 10.0, EndpointLoad("web", "10.0.0.1:80", 90, 0, 40.0, 100), 11.0)
    _record(book, "grpc-b", 2.0, EndpointLoad("web", "10.0.0.1:80", 50, 0, 30.0, 50), 12.0)
    (sample,) = book.samples(12.0)["web"]
    assert sample.since == 1.0
    assert sample.at == 12.0
