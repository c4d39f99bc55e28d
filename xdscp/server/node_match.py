"""CSDS `NodeMatcher`s as predicates over `NodeInfo` (sans I/O).

`node_filter` turns a ClientStatusRequest's matchers into one predicate: a node matches
when any matcher matches (no matcher: every node); a matcher matches when its `node_id`
`StringMatcher` (if set) and every `node_metadatas` `StructMatcher` match. Supported:
string matchers `exact`, `prefix`, `suffix`, `contains` (with `ignore_case`), and value
matchers `null_match`, `double_match`, `string_match`, `bool_match`, `present_match`,
`list_match`, `or_match`. `safe_regex` is refused: CSDS is reachable by anyone who can
reach the xDS port, and a regex engine without RE2's linear-time guarantee would let one
request stall the event loop. Anything refused raises `InvalidMatcherError` (INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from xdscp.errors import InvalidMatcherError
from xdscp.server.nodes import NodeInfo

NodeFilter = Callable[[NodeInfo], bool]
_Pred = Callable[[Any], bool]
_MISSING = object()


def node_filter(matchers: Sequence[Any]) -> NodeFilter:
    """One predicate for a request's `node_matchers` (`envoy.type.matcher.v3.NodeMatcher`)."""
    compiled = [_node_matcher(m, f"node_matchers[{i}]") for i, m in enumerate(matchers)]
    return lambda node: not compiled or any(match(node) for match in compiled)


def _node_matcher(matcher: Any, where: str) -> NodeFilter:
    by_id = _string(matcher.node_id, f"{where}.node_id") if matcher.HasField("node_id") else None
    by_meta = [
        _struct(s, f"{where}.node_metadatas[{i}]") for i, s in enumerate(matcher.node_metadatas)
    ]

    def match(node: NodeInfo) -> bool:
        if by_id is not None and not by_id(node.id):
            return False
        return all(m(node.metadata) for m in by_meta)

    return match


def _string(matcher: Any, where: str) -> _Pred:
    kind = matcher.WhichOneof("match_pattern")
    if kind not in {"exact", "prefix", "suffix", "contains"}:
        what = "no pattern" if kind is None else f"`{kind}`"
        supported = "use exact, prefix, suffix or contains"
        raise InvalidMatcherError(where, f"{what} is not supported; {supported}")
    fold = matcher.ignore_case
    pattern: str = getattr(matcher, kind)
    pattern = pattern.casefold() if fold else pattern
    test: Callable[[str], bool] = {
        "exact": lambda s: s == pattern,
        "prefix": lambda s: s.startswith(pattern),
        "suffix": lambda s: s.endswith(pattern),
        "contains": lambda s: pattern in s,
    }[kind]
    return lambda value: isinstance(value, str) and test(value.casefold() if fold else value)


def _struct(matcher: Any, where: str) -> Callable[[Mapping[str, Any]], bool]:
    if not matcher.path:
        raise InvalidMatcherError(f"{where}.path", "name at least one key")
    keys = [segment.key for segment in matcher.path]
    if not all(keys):
        raise InvalidMatcherError(f"{where}.path", "a segment without a key")
    if not matcher.HasField("value"):
        raise InvalidMatcherError(f"{where}.value", "required")
    test = _value(matcher.value, f"{where}.value")

    def match(metadata: Mapping[str, Any]) -> bool:
        value: Any = metadata
        for key in keys:
            value = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        return test(value)

    return match


def _value(matcher: Any, where: str) -> _Pred:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "null_match":
        return lambda v: v is None
    if kind == "double_match":
        return _double(matcher.double_match, f"{where}.double_match")
    if kind == "string_match":
        return _string(matcher.string_match, f"{where}.string_match")
    if kind == "bool_match":
        expected = matcher.bool_match
        return lambda v: isinstance(v, bool) and v == expected
    if kind == "present_match":
        present = matcher.present_match
        return lambda v: (v is not _MISSING) == present
    if kind in {"list_match", "or_match"}:
        options = matcher.list_match.one_of if kind == "list_match" else matcher.or_match
        return _any_of(options, f"{where}.{kind}", in_list=kind == "list_match")
    raise InvalidMatcherError(where, "set one of the value matchers")


def _any_of(matcher: Any, where: str, *, in_list: bool) -> _Pred:
    if in_list:
        element = _value(matcher, f"{where}.one_of")
        return lambda v: isinstance(v, list) and any(element(e) for e in v)
    options = [
        _value(m, f"{where}.value_matchers[{i}]") for i, m in enumerate(matcher.value_matchers)
    ]
    if not options:
        raise InvalidMatcherError(f"{where}.value_matchers", "name at least one")
    return lambda v: any(option(v) for option in options)


def _double(matcher: Any, where: str) -> _Pred:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "exact":
        exact = matcher.exact
        return lambda v: _number(v) and v == exact
    if kind == "range":
        start, end = matcher.range.start, matcher.range.end
        if not start < end or math.isnan(start) or math.isnan(end):
            raise InvalidMatcherError(f"{where}.range", "start must be below end")
        return lambda v: _number(v) and start <= v < end
    raise InvalidMatcherError(where, "set exact or range")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
