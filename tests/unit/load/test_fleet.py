"""The fleet's load: replicas' summaries add up to what one book holding every client's report
gives, survive the record's round trip, and a hostile record is refused without loss."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.load import EndpointLoad, LoadBook, LoadReport, LoadSample
from xdscp.load.fleet import (
    MAX_ENDPOINTS,
    MAX_RECORD_BYTES,
    FleetBook,
    encode_record,
    parse_record,
)
from xdscp.load.reports import Summary, merge_summaries, samples_of

ENDPOINTS = ("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
NOW, WALL = 1000.0, 1_700_000_000.0
STALE_S = 30.0


def _known(cluster: str, endpoint: str) -> bool:
    return cluster in {"web", "api"} and endpoint in ENDPOINTS


def _adaptive(service: str) -> bool:
    return service in {"web", "api"}


# One client's report: (reporter, cluster, endpoint, successful, errors, utilization per
# request, whether requests carry one, interval, seconds before NOW it was taken).
REPORTERS = ["envoy-a#1", "envoy-b#2", "grpc-c#3", "grpc-d#4", "envoy-e#5"]
REPORTS = st.lists(
    st.tuples(
        st.sampled_from(REPORTERS),
        st.sampled_from(["web", "api"]),
        st.sampled_from(ENDPOINTS),
        st.integers(0, 10_000),
        st.integers(0, 100),
        st.floats(0.0, 2.0),
        st.booleans(),
        st.sampled_from([1.0, 5.0, 10.0]),
        st.floats(0.0, 20.0),
    ),
    max_size=25,
)


def _take(book: LoadBook, report: tuple[object, ...]) -> None:
    reporter, cluster, endpoint, ok, errors, utilization, carries, interval, ago = report
    assert isinstance(ok, int)
    assert isinstance(errors, int)
    assert isinstance(utilization, float)
    carried = ok + errors if carries else 0
    load = EndpointLoad(str(cluster), str(endpoint), ok, errors, utilization * carried, carried)
    at = NOW - float(ago)  # type: ignore[arg-type]
    book.record(str(reporter), LoadReport("n", float(interval), (load,)), at, _known)  # type: ignore[arg-type]


def _close(a: LoadSample, b: LoadSample) -> bool:
    figures = [(a.rps, b.rps), (a.eps, b.eps), (a.utilization, b.utilization), (a.at, b.at)]
    figures.append((a.since or 0.0, b.since or 0.0))
    return a.endpoint == b.endpoint and all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6) for x, y in figures
    )


@settings(max_examples=200, deadline=None)
@given(REPORTS, st.lists(st.integers(0, 2), min_size=len(REPORTERS), max_size=len(REPORTERS)))
def test_replicas_summaries_add_up_to_one_book_of_every_client(
    reports: list[tuple[object, ...]], replica_of: list[int]
) -> None:
    """Whatever clients, each attached to one of three replicas, report (in order), each
    replica's record, read back by another, merged with the others gives the samples one
    book that took every report gives: rates summed, the utilization the mean over the
    requests that carried one, the latest end and earliest start."""
    whole, books = LoadBook(STALE_S), [LoadBook(STALE_S) for _ in range(3)]
    for report in reports:
        _take(whole, report)
        _take(books[replica_of[REPORTERS.index(str(report[0]))]], report)
    fleet = FleetBook(STALE_S)
    for n, book in enumerate(books[1:], 1):
        record, left_out = encode_record(book.summaries(NOW), NOW, WALL)
        assert left_out == []
        fleet.take(f"replica-{n}", record, NOW, WALL, _adaptive)
    merged = samples_of(merge_summaries([books[0].summaries(NOW), fleet.summaries(NOW)]))
    expected = whole.samples(NOW)
    assert sorted(merged) == sorted(expected)
    for cluster, samples in expected.items():
        assert len(merged[cluster]) == len(samples)
        assert all(_close(a, b) for a, b in zip(merged[cluster], samples, strict=True))


def test_two_replicas_clients_of_one_backend_give_its_utilization_not_the_sum() -> None:
    """Both replicas' clients see the backend at 0.5: the fleet's sample is 0.5 at the summed
    rate (the estimate, rate / utilization, is the capacity whoever sent the requests)."""
    half = Summary(100.0, 0.0, 50.0 * 10, 1000, NOW, NOW - 10)
    (sample,) = samples_of(merge_summaries([{"web": {ENDPOINTS[0]: half}}] * 2))["web"]
    assert (sample.rps, sample.utilization) == (200.0, 0.5)


def test_times_travel_in_wall_seconds_and_a_clock_ahead_reads_as_now() -> None:
    """The reader's monotonic clock is unrelated to the writer's: an end 3 s old at the
    writer is 3 s old at the reader; one in the reader's future is now, its length kept."""
    summary = Summary(10.0, 0.0, 5.0, 10, 50.0 - 3.0, 50.0 - 13.0)
    record, _ = encode_record({"web": {ENDPOINTS[0]: summary}}, 50.0, WALL)
    read = parse_record(record, 7000.0, WALL, _adaptive).summaries["web"][ENDPOINTS[0]]
    assert (read.at, read.since) == pytest.approx((6997.0, 6987.0))
    ahead = parse_record(record, 7000.0, WALL - 60, _adaptive).summaries["web"][ENDPOINTS[0]]
    assert (ahead.at, ahead.since) == pytest.approx((7000.0, 6990.0))


def test_the_same_load_is_the_same_bytes_and_a_record_is_bounded() -> None:
    """Sorted; services past the size bounds are left out (named), whole, in name order."""
    one = {"b": {ENDPOINTS[1]: Summary(1.0, 0.0, 0.5, 1, NOW, NOW - 1)},
           "a": {ENDPOINTS[0]: Summary(2.0, 0.0, 0.5, 1, NOW, NOW - 1)}}  # fmt: skip
    assert encode_record(one, NOW, WALL) == encode_record(dict(reversed(one.items())), NOW, WALL)
    many = {f"s{i:05}": {f"10.{i // 250}.{i % 250}.{j}:80": Summary(1.0, 0.0, 0.5, 1, NOW, NOW - 1)
                         for j in range(10)} for i in range(MAX_ENDPOINTS // 10 + 5)}  # fmt: skip
    record, left_out = encode_record(many, NOW, WALL)
    assert len(record) <= MAX_RECORD_BYTES
    assert left_out
    assert left_out == sorted(left_out)
    assert left_out[-1] == max(many)
    assert len(json.loads(record)["services"]) == len(many) - len(left_out)


def _record(services: object) -> bytes:
    return json.dumps({"v": 1, "services": services}).encode()


GOOD = [10.0, 0.0, 5.0, 10, WALL - 1, WALL - 11]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not utf-8", b"nope", b"[]", b'{"v": 2, "services": {}}', b'{"v": 1}',
        _record([]), _record({"web": []}), _record({"bad name!": {}}),
        b"[" * 100_000, b" " * (MAX_RECORD_BYTES + 1),
        _record({"web": {f"10.0.{i // 250}.{i % 250}:{p}": GOOD for i in range(2001)
                         for p in range(10)}}),
    ],
    ids=["not-utf8", "not-json", "list", "version", "no-services", "services-list",
         "endpoints-list", "service-name", "nested", "too-large", "too-many-endpoints"],
)  # fmt: skip
def test_a_hostile_record_is_refused_whole_and_the_last_good_one_stays(raw: bytes) -> None:
    fleet = FleetBook(STALE_S)
    fleet.take("r", _record({"web": {ENDPOINTS[0]: GOOD}}), NOW, WALL, _adaptive)
    with pytest.raises(ValidationError):
        fleet.take("r", raw, NOW, WALL, _adaptive)
    assert list(fleet.summaries(NOW)["web"]) == [ENDPOINTS[0]]


@pytest.mark.parametrize(
    "fields",
    [[math.nan, 0, 0, 0, WALL, WALL], [-1, 0, 0, 0, WALL, WALL], [1, 2, 0, 0, WALL, WALL],
     [1e10, 0, 0, 0, WALL, WALL], [1, 0, 5000, 1, WALL, WALL], [1, 0, 1, 0.5, WALL, WALL],
     [1, 0, 0, 0, WALL, WALL + 1], [1, 0, 0, 0, WALL, 0], [1, 0, 0, 0, WALL],
     [1, 0, 0, 0, WALL, "x"], [1, 0, 0, 0, WALL, True], [1, 0, 0, 0, WALL, 10**400], "x"],
    ids=["nan", "negative", "eps-above-rps", "rps", "utilization", "carried-fraction",
         "since-after-at", "span", "short", "string", "bool", "huge-int", "not-a-list"],
)  # fmt: skip
def test_an_implausible_endpoint_is_refused_alone_and_counted(fields: object) -> None:
    raw = _record({"web": {ENDPOINTS[0]: fields, ENDPOINTS[1]: GOOD}, "gone": {ENDPOINTS[2]: GOOD}})
    parsed = parse_record(raw, NOW, WALL, _adaptive)
    assert list(parsed.summaries) == ["web"]
    assert list(parsed.summaries["web"]) == [ENDPOINTS[1]]
    assert parsed.refused == {"implausible": 1, "unknown_service": 1}


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=6),
    max_leaves=30,
).map(lambda doc: json.dumps({"v": 1, "services": {"web": doc}}).encode())))  # fmt: skip
def test_whatever_a_record_holds_it_is_read_or_refused_never_an_error(raw: bytes) -> None:
    """Any bytes, any JSON under a service: a `ValidationError`, or endpoints that are all
    plausible (finite, not negative)."""
    try:
        parsed = parse_record(raw, NOW, WALL, _adaptive)
    except ValidationError:
        return
    for endpoints in parsed.summaries.values():
        for s in endpoints.values():
            assert all(math.isfinite(f) and f >= 0 for f in (s.rps, s.eps, s.utilization_total))
            assert s.since <= s.at <= NOW


def test_a_stale_or_dropped_replicas_load_stops_counting() -> None:
    fleet = FleetBook(STALE_S)
    fleet.take("a", _record({"web": {ENDPOINTS[0]: GOOD}}), NOW, WALL, _adaptive)
    fleet.take("b", _record({"web": {ENDPOINTS[0]: GOOD}}), NOW, WALL, _adaptive)
    assert fleet.summaries(NOW)["web"][ENDPOINTS[0]].rps == 20.0
    fleet.drop("a")
    assert fleet.replicas == {"b"}
    assert fleet.summaries(NOW)["web"][ENDPOINTS[0]].rps == 10.0
    assert fleet.summaries(NOW + STALE_S) == {}
    with pytest.raises(ValidationError):
        fleet.take("", _record({}), NOW, WALL, _adaptive)
