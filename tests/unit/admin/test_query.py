"""`/api/predict`'s query string: good queries parse, every bad one is a ValidationError
naming the parameter (the server answers it with 400)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.admin import PredictQuery, parse_predict_query
from xdscp.errors import ValidationError


def test_a_full_query_parses() -> None:
    """Every parameter: headers are lower-cased names, the IP is normalised."""
    query = parse_predict_query(
        {
            "service": ["web"],
            "client": ["grpc"],
            "requests": ["500"],
            "header": ["X-User: alice", "x-tenant:t1"],
            "cookie": ["session:abc"],
            "query": ["q:1"],
            "ip": ["::ffff:10.0.0.1"],
        }
    )
    assert query == PredictQuery(
        service="web",
        client="grpc",
        requests=500,
        headers={"x-user": "alice", "x-tenant": "t1"},
        cookies={"session": "abc"},
        query={"q": "1"},
        source_ip="::ffff:a00:1",
    )
    assert query.has_request


def test_defaults() -> None:
    """Only the service: Envoy, 10000 requests, no request to route."""
    query = parse_predict_query({"service": ["web"]})
    assert (query.client, query.requests, query.has_request) == ("envoy", 10_000, False)


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({}, "service", "required"),
        ({"service": [""]}, "service", "required"),
        ({"service": ["a", "b"]}, "service", "at most once"),
        ({"service": ["no spaces"]}, "service", ""),
        ({"service": ["web"], "client": ["curl"]}, "client", "envoy, grpc"),
        ({"service": ["web"], "requests": ["ten"]}, "requests", "integer"),
        ({"service": ["web"], "requests": ["0"]}, "requests", "[1, 100000]"),
        ({"service": ["web"], "requests": ["100001"]}, "requests", "[1, 100000]"),
        ({"service": ["web"], "header": ["x-user"]}, "header", "NAME:VALUE"),
        ({"service": ["web"], "cookie": [":v"]}, "cookie", "NAME:VALUE"),
        ({"service": ["web"], "ip": ["example.com"]}, "ip", "IPv4 or IPv6"),
        ({"service": ["web"], "colour": ["red"]}, "colour", "unknown parameter"),
    ],
)
def test_bad_queries_name_the_parameter(
    params: dict[str, list[str]], parameter: str, words: str
) -> None:
    """A bad query fails with the parameter and what was expected."""
    with pytest.raises(ValidationError) as caught:
        parse_predict_query(params)
    assert caught.value.field == parameter
    assert words in str(caught.value)


@given(
    st.dictionaries(
        st.sampled_from(["service", "client", "requests", "header", "cookie", "query", "ip", "x"]),
        st.lists(st.text(max_size=20), max_size=3),
        max_size=6,
    )
)
def test_any_query_parses_or_is_a_validation_error(params: dict[str, list[str]]) -> None:
    """Whatever the query string holds, the parser returns a query or a ValidationError
    (never another exception, which would be a 500)."""
    try:
        query = parse_predict_query(params)
    except ValidationError as exc:
        field = exc.field
    else:
        field = ""
        assert query.service == params["service"][0]
        assert 1 <= query.requests <= 100_000
    assert field in {"", "service", "client", "requests", "header", "cookie", "query", "ip", "x"}
