"""`/api/predict`'s query string → a checked `PredictQuery` (sans I/O; bad input raises).

    service=NAME            required: a service the plane serves
    client=envoy|grpc       whose balancer predicts [envoy]
    requests=N              synthetic requests for the split, 1..100000 [10000]
    path=PATH               the request's path, for the service's routes [/]
    header=NAME:VALUE       a request header (repeat), for hash policies and routes
    cookie=NAME:VALUE       a request cookie (repeat)
    query=NAME:VALUE        a query parameter (repeat)
    ip=ADDRESS              the request's source IP

Every problem is a `ValidationError` naming the parameter, which the server answers with
400 and the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xdscp.errors import ValidationError
from xdscp.model import ClientKind, check_ip, check_service_name

DEFAULT_REQUESTS = 10_000
MAX_REQUESTS = 100_000
PAIRS = ("header", "cookie", "query")
KNOWN = frozenset({"service", "client", "requests", "ip", "path", *PAIRS})
_PATH = re.compile(r"/[\x20-\x7e]{0,4095}")


@dataclass(frozen=True, slots=True)
class PredictQuery:
    """What to predict: the split of `service` over `requests` synthetic requests, and where
    one request with these attributes goes (when any is given)."""

    service: str
    client: ClientKind = ClientKind.ENVOY
    requests: int = DEFAULT_REQUESTS
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    source_ip: str | None = None
    path: str | None = None

    @property
    def has_request(self) -> bool:
        """True when a request's attributes were given (the lookup box)."""
        return bool(self.headers or self.cookies or self.query or self.source_ip)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name, ())
    if len(values) > 1:
        raise ValidationError(name, f"give {name}= at most once, got {len(values)}")
    return values[0] if values else None


def _pairs(params: Mapping[str, Sequence[str]], name: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in params.get(name, ()):
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ValidationError(name, f"expected {name}=NAME:VALUE, got {item!r}")
        key = key.strip().lower() if name == "header" else key.strip()
        pairs[key] = value.strip()
    return pairs


def _requests(text: str | None) -> int:
    if text is None:
        return DEFAULT_REQUESTS
    try:
        count = int(text)
    except ValueError:
        raise ValidationError("requests", f"must be an integer, got {text!r}") from None
    if not 1 <= count <= MAX_REQUESTS:
        raise ValidationError("requests", f"must be in [1, {MAX_REQUESTS}], got {count}")
    return count


def parse_predict_query(params: Mapping[str, Sequence[str]]) -> PredictQuery:
    """Check the query parameters (each name → its values, in order)."""
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise ValidationError(unknown[0], f"unknown parameter; known: {', '.join(sorted(KNOWN))}")
    service = _one(params, "service")
    if not service:
        raise ValidationError("service", "required: /api/predict?service=NAME")
    check_service_name(service)
    client = _client(_one(params, "client") or ClientKind.ENVOY)
    ip = _one(params, "ip")
    return PredictQuery(
        service=service,
        client=client,
        requests=_requests(_one(params, "requests")),
        headers=_pairs(params, "header"),
        cookies=_pairs(params, "cookie"),
        query=_pairs(params, "query"),
        source_ip=None if not ip else check_ip("ip", ip),
        path=_path(_one(params, "path")),
    )


def _path(text: str | None) -> str | None:
    if text is not None and not _PATH.fullmatch(text):
        raise ValidationError(
            "path", f"must be printable ASCII starting with '/', got {text[:80]!r}"
        )
    return text


def _client(value: str) -> ClientKind:
    try:
        return ClientKind(value)
    except ValueError:
        known = ", ".join(ClientKind)
        raise ValidationError("client", f"must be one of {known}, got {value!r}") from None
