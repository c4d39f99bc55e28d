"""A request's hash from Envoy route hash policies (source/common/http/hash_policy.cc).

Each policy may produce a 64-bit value; values combine in order as `h = rotl64(h, 1) ^ new`
(the first is taken as is), and evaluation stops at a `terminal` policy once *some* hash
exists (possibly from an earlier policy). No value at all gives None: Envoy then picks a
random hash.

What each policy hashes, as Envoy does:

- `header`: all values of the (lower-cased) header, after the optional `regex_rewrite`,
  sorted bytewise, then hashed as a chain (`xxh64(v2, seed=xxh64(v1))`...), so the order of
  repeated headers does not matter. A present header with an empty value still hashes.
- `cookie`: XXH64 of the named cookie's value when present and non-empty (double quotes
  around the value are removed). A missing cookie with a `ttl` makes Envoy mint one from the
  client and listener addresses (`xxh64(remote + local)` as hex) and set it on the response;
  the listener address is not known here, so such a request yields no hash from that policy
  and the next request carrying the cookie hashes as Envoy would.
- `connection_properties.source_ip`: XXH64 of the client IP text without the port. A policy
  with `source_ip: false` is dropped at configuration time, terminal flag included.
- `query_parameter`: XXH64 of the parameter's first value, raw (not percent-decoded); a
  parameter given without `=` has the value "".
- `filter_state`: never produces a hash here (there is no filter state to read).

Header names are looked up case-insensitively; pass pseudo-headers as Envoy stores them
(HTTP/1 `Host` is `:authority`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from xdscp.balancer.hash.functions import rotl64, xxh64, xxh64_chain
from xdscp.errors import ValidationError

Values = str | Sequence[str]
_RE2_GROUP = re.compile(r"\\(\d|\\)")


def _values(value: Values | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _lower_headers(headers: Mapping[str, Values] | None) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for name, value in (headers or {}).items():
        merged.setdefault(name.lower(), []).extend(_values(value))
    return merged


@lru_cache(maxsize=256)
def _rewriter(pattern: str, substitution: str) -> Callable[[str], str]:
    """RE2 `GlobalReplace` with RE2 substitution syntax (`\\0`-`\\9`, `\\\\`) in Python `re`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValidationError("hash_policy.header.regex_rewrite.pattern", str(exc)) from None

    def expand(match: re.Match[str]) -> str:
        def group(token: re.Match[str]) -> str:
            text = token.group(1)
            return "\\" if text == "\\" else match.group(int(text)) or ""

        return _RE2_GROUP.sub(group, substitution)

    return lambda value: compiled.sub(expand, value)


def _header_hash(policy: Any, headers: Mapping[str, list[str]]) -> int | None:
    values = headers.get(policy.header_name.lower())
    if not values:
        return None
    if policy.HasField("regex_rewrite"):
        rewrite = policy.regex_rewrite
        rewriter = _rewriter(rewrite.pattern.regex, rewrite.substitution)
        values = [rewriter(value) for value in values]
    return xxh64_chain(sorted(value.encode() for value in values))


def parse_cookie_value(cookie_headers: Sequence[str], name: str) -> str:
    """Envoy's `Utility::parseCookieValue`: the first cookie called `name`, "" if none."""
    for header in cookie_headers:
        for part in header.split(";"):
            if not part or "=" not in part:
                continue
            key, _, value = part.lstrip(" ").partition("=")
            if key != name:
                continue
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            return value
    return ""


def _cookie_hash(
    policy: Any, headers: Mapping[str, list[str]], cookies: Mapping[str, str] | None
) -> int | None:
    if cookies is not None:
        value = cookies.get(policy.name, "")
    else:
        value = parse_cookie_value(headers.get("cookie", []), policy.name)
    return xxh64(value) if value else None


def client_ip_text(source_ip: str) -> str:
    """The client IP as Envoy's `addressAsString()` prints it (inet_ntop), port dropped.

    IPv6 is compressed as glibc's inet_ntop does, with the IPv4 tail of `::ffff:a.b.c.d` and
    `::a.b.c.d` kept dotted, and no zone. (A dual-stack listener reports IPv4 clients as plain
    IPv4; pass that text for them.)
    """
    text = source_ip.strip()
    if text.startswith("["):
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        raise ValidationError("source_ip", f"must be an IP literal, got {source_ip!r}") from None
    if address.version == 6:
        packed = address.packed
        tail = ipaddress.IPv4Address(packed[12:])
        if packed[:10] == bytes(10) and packed[10:12] == b"\xff\xff":
            return f"::ffff:{tail}"
        if packed[:12] == bytes(12) and packed[12:14] != bytes(2):
            return f"::{tail}"
    return str(address)


def parse_query(path: str) -> dict[str, list[str]]:
    """Envoy's `QueryParamsMulti::parseQueryString`: raw (undecoded) values per name."""
    params: dict[str, list[str]] = {}
    _, mark, query = path.partition("?")
    if not mark:
        return params
    for param in query.split("&"):
        if not param:
            continue
        name, _, value = param.partition("=")
        params.setdefault(name, []).append(value)
    return params


def _query_hash(
    policy: Any, headers: Mapping[str, list[str]], query: Mapping[str, Values] | None
) -> int | None:
    if query is None:
        paths = headers.get(":path")
        query = parse_query(paths[0]) if paths else {}
    if policy.name not in query:
        return None
    values = _values(query[policy.name])
    return xxh64(values[0]) if values else None


def request_hash(
    policies: Sequence[Any],
    *,
    headers: Mapping[str, str | Sequence[str]] | None = None,
    source_ip: str | None = None,
    cookies: Mapping[str, str] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
) -> int | None:
    """The hash Envoy computes for a request under `policies` (RouteAction.HashPolicy list).

    `cookies` overrides parsing the `cookie` header(s); `query` (parameter name to raw values)
    overrides parsing the `:path` header with `parse_query`. Returns None when no policy
    produced a value.
    """
    lowered = _lower_headers(headers)
    result: int | None = None
    for policy in policies:
        kind = policy.WhichOneof("policy_specifier")
        value: int | None = None
        if kind == "header":
            value = _header_hash(policy.header, lowered)
        elif kind == "cookie":
            value = _cookie_hash(policy.cookie, lowered, cookies)
        elif kind == "connection_properties":
            if not policy.connection_properties.source_ip:
                continue
            value = xxh64(client_ip_text(source_ip)) if source_ip else None
        elif kind == "query_parameter":
            value = _query_hash(policy.query_parameter, lowered, query)
        elif kind is None:
            raise ValidationError("hash_policy", "policy_specifier is not set")
        if value is not None:
            result = value if result is None else rotl64(result) ^ value
        if policy.terminal and result is not None:
            break
    return result
