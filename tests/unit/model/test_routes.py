"""Route tables: any accepted list reads back the same; any hostile one is a ValidationError
naming the field, never another exception; the limits clients NACK beyond are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.harness.routes import hostile_documents, route_lists
from xdscp.errors import ValidationError
from xdscp.model import MAX_ROUTES, PathKind, Route, RouteTable

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(route_lists())
def test_any_accepted_list_round_trips(routes: list[Any]) -> None:
    """`from_list(to_list(t)) == t`, and the written form is a fixed point."""
    table = RouteTable.from_list(routes)
    again = RouteTable.from_list(table.to_list())
    assert again == table
    assert again.to_list() == table.to_list()


@_SETTINGS
@given(hostile_documents())
def test_any_hostile_document_is_a_validation_error(doc: Any) -> None:
    """Whatever the document, the parser either accepts it (and it round-trips) or raises
    ValidationError whose field starts with `routes`."""
    try:
        table = RouteTable.from_list(doc)
    except ValidationError as exc:
        field = exc.field
    else:
        assert RouteTable.from_list(table.to_list()) == table
        return
    assert field.startswith("routes"), field


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ([{"cluster": "a", "split": {"b": 1}}], "routes[0].cluster", "exactly one"),
        ([{}], "routes[0].cluster", "exactly one"),
        ([{"split": {"a": 0, "b": 0}}], "routes[0].split", "add up to"),
        ([{"split": {"a": 2**32 - 1, "b": 1}}], "routes[0].split", "add up to"),
        ([{"split": {"a": -1}}], "routes[0].split.a", "must be in"),
        ([{"split": {}}], "routes[0].split", "must map"),
        ([{"cluster": "a"}, {"cluster": "b"}], "routes[1]", "can never match"),
        ([{"match": {"regex": "(a)\\1"}, "cluster": "a"}], "routes[0].match.regex", "RE2"),
        ([{"match": {"regex": "(?=a)"}, "cluster": "a"}], "routes[0].match.regex", "lookaround"),
        ([{"match": {"regex": "a{1000}"}, "cluster": "a"}], "routes[0].match.regex", "program"),
        ([{"match": {"regex": "(a"}, "cluster": "a"}], "routes[0].match.regex", "not a valid"),
        ([{"match": {"prefix": "api"}, "cluster": "a"}], "routes[0].match.prefix", "start with"),
        ([{"match": {"prefix": "/a", "path": "/b"}, "cluster": "a"}], "routes[0].match", "one of"),
        ([{"match": {"prefx": "/a"}, "cluster": "a"}], "routes[0].match", "unknown fields"),
        ([{"match": {"headers": [{"name": "X-Up", "exact": "1"}]}, "cluster": "a"}],
         "routes[0].match.headers[0].name", "lower-case"),
        ([{"match": {"headers": [{"name": "x", "exact": "1", "prefix": "2"}]}, "cluster": "a"}],
         "routes[0].match.headers[0]", "exactly one"),
        ([{"match": {"headers": [{"name": "x", "range": [5, 5]}]}, "cluster": "a"}],
         "routes[0].match.headers[0].range", "below end"),
        ([{"match": {"headers": [{"name": "x", "present": False}]}, "cluster": "a"}],
         "routes[0].match.headers[0].present", "invert"),
        ([{"match": {"headers": [{"name": "x-bin", "present": True}]}, "cluster": "a"}],
         "routes[0].match.headers[0].name", "gRPC"),
        ([{"match": {"grpc": {"service": "/bad"}}, "cluster": "a"}],
         "routes[0].match.grpc.service", "gRPC service"),
        ([{"cluster": "a", "fault": {}}], "routes[0].fault", "needs a delay"),
        ([{"cluster": "a", "fault": {"abort": {"http_status": 600}}}],
         "routes[0].fault.abort.http_status", "[200, 599]"),
        ([{"cluster": "a", "fault": {"abort": {"grpc_status": 1, "percent": 101}}}],
         "routes[0].fault.abort.percent", "[0.0, 100.0]"),
        ([{"cluster": "a", "fault": {"delay": {"percent": 5}}}], "routes[0].fault.delay.fixed",
         "required"),
        ([{"cluster": "a", "retries": {"num_retries": -1}}], "routes[0].retries.num_retries",
         "[0, 1000]"),
        ([{"cluster": "a", "timeout": "soon"}], "routes[0].timeout", "duration"),
        ([{"cluster": "bad name"}], "routes[0].cluster", "letters, digits"),
        ([], "routes", "at least one"),
        ({"cluster": "a"}, "routes", "a list"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(doc: Any, field: str, words: str) -> None:
    """The error names the field at fault and what it accepts."""
    with pytest.raises(ValidationError) as info:
        RouteTable.from_list(doc)
    assert info.value.field == field
    assert words in info.value.message


def test_too_many_routes_are_refused_before_any_is_parsed() -> None:
    """10,000 routes: one error naming the limit (no route is built)."""
    routes = [{"match": {"prefix": f"/{i}"}, "cluster": "a"} for i in range(10_000)]
    with pytest.raises(ValidationError, match=f"at most {MAX_ROUTES}"):
        RouteTable.from_list(routes)


def test_grpc_sugar_is_the_method_path() -> None:
    """`grpc: {service, method}` is the path `/service/method`; without a method, the prefix
    `/service/`; the sugar is written back as given."""
    table = RouteTable.from_list([
        {"match": {"grpc": {"service": "echo.Echo", "method": "Get"}}, "cluster": "a"},
        {"match": {"grpc": {"service": "echo.Echo"}}, "cluster": "a"},
    ])  # fmt: skip
    first, second = (r.match for r in table.routes)
    assert (first.kind, first.value) == (PathKind.PATH, "/echo.Echo/Get")
    assert (second.kind, second.value) == (PathKind.PREFIX, "/echo.Echo/")
    assert table.to_list()[1] == {"match": {"grpc": {"service": "echo.Echo"}}, "cluster": "a"}


def test_a_table_without_a_catch_all_gets_the_default_route() -> None:
    """The last route matching only some requests: the rest go to the service itself."""
    table = RouteTable.from_list([{"match": {"prefix": "/v2/"}, "cluster": "web-v2"}])
    served = table.with_default("web")
    assert served[-1] == Route(cluster="web")
    assert served[-1].match.matches_all
    catch_all = RouteTable.from_list([{"split": {"web": 1, "web-v2": 1}}])
    assert catch_all.with_default("web") == catch_all.routes


def test_split_targets_are_sorted_and_named() -> None:
    """A split is kept in name order (the same table whatever the writer's order)."""
    one = RouteTable.from_list([{"split": {"web-v2": 10, "web": 90}}])
    two = RouteTable.from_list([{"split": {"web": 90, "web-v2": 10}}])
    assert one == two
    assert one.targets == frozenset({"web", "web-v2"})
