"""The route a request takes (`xdscp.balancer.routing`): path and header matching as Envoy
and gRPC clients do it, first match wins, and the split over clusters and endpoints."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from tests.harness.routes import route_lists
from xdscp.balancer.routing import (
    cluster_shares,
    first_match,
    header_matches,
    path_matches,
    route_matches,
    route_split,
)
from xdscp.model import HeaderKind, HeaderMatch, PathKind, Route, RouteMatch, RouteTable, Service
from xdscp.translate.routes import served_routes

_CHARS = st.sampled_from("abcAB/-.?#019")
_TEXT = st.text(_CHARS, max_size=8)
_NAMES = st.sampled_from(["x-a", "x-b", "user"])


def _h(data: dict[str, object]) -> HeaderMatch:
    return HeaderMatch.from_mapping(data, "h")


def _m(data: dict[str, object]) -> RouteMatch:
    return RouteMatch.from_mapping(data, "match")


def test_path_forms() -> None:
    """Prefix on the whole :path; path and regex without the query; case_sensitive false
    folds prefix and path, never a regex."""
    assert path_matches(_m({"prefix": "/api/"}), "/api/v1?x=1")
    assert not path_matches(_m({"prefix": "/api/"}), "/API/v1")
    assert path_matches(_m({"prefix": "/api/", "case_sensitive": False}), "/API/v1")
    assert path_matches(_m({"path": "/a"}), "/a?q=1")
    assert not path_matches(_m({"path": "/a"}), "/a/")
    assert path_matches(_m({"path": "/A", "case_sensitive": False}), "/a")
    assert path_matches(_m({"regex": "/v[0-9]+/.*"}), "/v12/x?y")
    assert not path_matches(_m({"regex": "/v[0-9]+"}), "/v12/x")  # the whole path
    assert not path_matches(_m({"regex": "/v", "case_sensitive": False}), "/V")
    assert path_matches(_m({"grpc": {"service": "echo.Echo", "method": "Slow"}}), "/echo.Echo/Slow")
    assert path_matches(_m({"grpc": {"service": "echo.Echo"}}), "/echo.Echo/Fast")


def test_header_forms() -> None:
    """Each kind, inverted, and an absent header (only present+invert matches it)."""
    headers = {"x-a": "alice", "n": "15", "e": ""}
    assert header_matches(_h({"name": "x-a", "exact": "alice"}), headers)
    assert not header_matches(_h({"name": "x-a", "exact": "alice", "invert": True}), headers)
    assert header_matches(_h({"name": "x-a", "prefix": "al"}), headers)
    assert header_matches(_h({"name": "x-a", "suffix": "ce"}), headers)
    assert header_matches(_h({"name": "x-a", "regex": "a.*e"}), headers)
    assert not header_matches(_h({"name": "x-a", "regex": "a"}), headers)
    assert header_matches(_h({"name": "n", "range": [10, 20]}), headers)
    assert not header_matches(_h({"name": "n", "range": [10, 15]}), headers)
    assert header_matches(_h({"name": "x-a", "range": [0, 9], "invert": True}), headers)
    assert header_matches(_h({"name": "e", "present": True}), headers)
    assert header_matches(_h({"name": "e", "exact": ""}), headers)
    for kind in ({"exact": "x"}, {"prefix": "x"}, {"regex": ".*"}, {"range": [0, 1]}):
        for invert in (False, True):
            assert not header_matches(_h({"name": "gone", **kind, "invert": invert}), headers)
    assert not header_matches(_h({"name": "gone", "present": True}), headers)
    assert header_matches(_h({"name": "gone", "present": True, "invert": True}), headers)


def test_range_values() -> None:
    """A range reads a base-10 int64 (a sign allowed; spaces, underscores, overflow not)."""
    rule = _h({"name": "n", "range": [-(2**63), 2**63 - 1]})
    for value, hit in (("+5", True), ("-5", True), (" 5", False), ("1_0", False),
                       (str(2**63), False), ("", False), ("٣", False)):  # fmt: skip
        assert header_matches(rule, {"n": value}) is hit, value


def test_first_match_wins_and_names_fold() -> None:
    """Routes are tried in order; request header names are compared in lower case."""
    table = RouteTable.from_list([
        {"match": {"headers": [{"name": "x-canary", "exact": "1"}]}, "cluster": "web-v2"},
        {"match": {"prefix": "/a"}, "cluster": "a"},
        {"split": {"web": 3, "web-v2": 1}},
    ])  # fmt: skip
    routes = table.routes
    assert first_match(routes, "/a", {"X-Canary": "1"}) == 0
    assert first_match(routes, "/a", {}) == 1
    assert first_match(routes, "/b", {"x-canary": "2"}) == 2
    assert first_match(routes[:2], "/b", {}) is None


def test_route_split_multiplies_shares() -> None:
    """A split's clusters get weight/total; each endpoint the cluster's share times its own."""
    routes = (Route(split=(("web", 3), ("web-v2", 1))),)
    inner = {"web": {"a:1": 0.5, "b:1": 0.5}, "web-v2": {"c:1": 1.0}}
    found = route_split(routes, "/", {}, inner.__getitem__)
    assert found.index == 0
    assert found.clusters == {"web": 0.75, "web-v2": 0.25}
    assert found.endpoints == {"web": {"a:1": 0.375, "b:1": 0.375}, "web-v2": {"c:1": 0.25}}
    assert route_split(routes[:0], "/", {}, inner.__getitem__).index is None


# A direct transcription of the rules (Python `re` for the regexes), against the matcher.
def _direct_header(rule: HeaderMatch, headers: dict[str, str]) -> bool:
    if rule.name not in headers:
        return rule.kind is HeaderKind.PRESENT and rule.invert
    value = headers[rule.name]
    if rule.kind is HeaderKind.EXACT:
        hit = value == rule.value
    elif rule.kind is HeaderKind.PREFIX:
        hit = value[: len(rule.value)] == rule.value
    elif rule.kind is HeaderKind.SUFFIX:
        hit = len(value) >= len(rule.value) and value[len(value) - len(rule.value) :] == rule.value
    elif rule.kind is HeaderKind.REGEX:
        hit = re.fullmatch(rule.value, value) is not None
    elif rule.kind is HeaderKind.RANGE:
        digits = value.lstrip("+-")
        ok = digits.isascii() and digits.isdigit() and len(value) - len(digits) <= 1
        hit = ok and rule.range_start <= int(value) < rule.range_end
    else:
        hit = True
    return hit != rule.invert


def _direct_path(match: RouteMatch, path: str) -> bool:
    bare = re.split(r"[?#]", path)[0]
    if match.kind is PathKind.REGEX:
        return re.fullmatch(match.value, bare) is not None
    subject = path if match.kind is PathKind.PREFIX else bare
    value = match.value
    if not match.case_sensitive:
        subject, value = subject.lower(), value.lower()
    return subject[: len(value)] == value if match.kind is PathKind.PREFIX else subject == value


_HEADER_RULES = st.one_of(
    st.builds(
        lambda n, k, v, i: {"name": n, k: v, "invert": i},
        _NAMES, st.sampled_from(["exact", "prefix", "suffix"]), _TEXT.filter(bool), st.booleans(),
    ),
    st.builds(lambda n, i: {"name": n, "present": True, "invert": i}, _NAMES, st.booleans()),
    st.builds(lambda n, a, i: {"name": n, "range": [a, a + 5], "invert": i},
              _NAMES, st.integers(-3, 12), st.booleans()),
    st.builds(lambda n, r, i: {"name": n, "regex": r, "invert": i},
              _NAMES, st.sampled_from(["a.*", "[0-9]+", "b|1", ".*A"]), st.booleans()),
)  # fmt: skip
_PATHS = st.builds(lambda t: "/" + t, _TEXT)
_MATCHES = st.builds(
    lambda form, value, case, headers: {form: value, "case_sensitive": case, "headers": headers},
    st.sampled_from(["prefix", "path"]), _PATHS, st.booleans(), st.lists(_HEADER_RULES, max_size=3),
) | st.builds(
    lambda value, headers: {"regex": value, "headers": headers},
    st.sampled_from(["/a.*", "/[ab]+", "/.*#?", "/A?b"]), st.lists(_HEADER_RULES, max_size=3),
)  # fmt: skip
_HEADERS = st.dictionaries(_NAMES, st.one_of(_TEXT, st.integers(-5, 20).map(str)), max_size=3)


@given(_MATCHES, _PATHS, _HEADERS)
def test_matcher_agrees_with_direct_transcription(
    data: dict[str, object], path: str, headers: dict[str, str]
) -> None:
    """For generated matches, paths and headers the matcher says what the rules say."""
    match = _m(data)
    expected = _direct_path(match, path) and all(_direct_header(h, headers) for h in match.headers)
    assert first_match((Route(match=match, cluster="x"),), path, headers) == (
        0 if expected else None
    )


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 2**32 - 1), min_size=1)
       .filter(lambda d: 0 < sum(d.values()) <= 2**32 - 1))  # fmt: skip
def test_split_shares_are_weights_over_total(weights: dict[str, int]) -> None:
    """A split's cluster shares are weight / total and add up to 1."""
    route = Route(split=tuple(weights.items()))
    shares = cluster_shares(route)
    total = sum(weights.values())
    assert shares == {name: w / total for name, w in weights.items()}
    assert math.isclose(sum(shares.values()), 1.0)


@given(
    st.dictionaries(st.sampled_from("abcd"), st.integers(1, 1000), min_size=1),
    st.dictionaries(st.sampled_from(["e1", "e2", "e3"]), st.integers(1, 50), min_size=1),
)
def test_endpoint_shares_sum_to_one(weights: dict[str, int], inner: dict[str, int]) -> None:
    """When each cluster's endpoint shares sum to 1, all the route's endpoint shares do, and
    each cluster's endpoints add up to its share."""
    routes = (Route(split=tuple(weights.items())),)
    total = sum(inner.values())
    found = route_split(
        routes, "/x", {}, lambda c: {f"{c}-{k}": v / total for k, v in inner.items()}
    )
    assert math.isclose(sum(s for per in found.endpoints.values() for s in per.values()), 1.0)
    for name, share in found.clusters.items():
        assert math.isclose(sum(found.endpoints[name].values()), share)


@given(
    route_lists(),
    st.sampled_from(["/", "/api/v2/x", "/items/abc", "/echo.Echo/Slow", "/x?canary=1"]),
    st.dictionaries(st.sampled_from(["x-canary", "x-user", "x-n"]), _TEXT, max_size=2),
    st.booleans(),
)
def test_a_served_table_routes_every_request(
    routes: list[object], path: str, headers: dict[str, str], present: bool
) -> None:
    """Served (the default route added), every request takes a route: the first whose match
    it meets, and a split's shares add up to 1 (web-v2 served or not)."""
    service = Service("web", routes=RouteTable.from_list(routes))
    served = served_routes(service, {"web", "web-v2"} if present else {"web"})
    index = first_match(served, path, headers)
    assert index is not None
    assert not any(route_matches(r.match, path, headers) for r in served[:index])
    assert route_matches(served[index].match, path, headers)
    assert math.isclose(sum(cluster_shares(served[index]).values()), 1.0)
    assert present or "web-v2" not in cluster_shares(served[index])
