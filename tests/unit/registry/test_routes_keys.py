"""Routes in etcd (`/xdscp/routes/<service>`): parsed strictly, the last good kept over a
bad write, any value a ValidationError or a table that round-trips."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.routes import hostile_documents, route_lists
from xdscp.errors import ValidationError
from xdscp.etcd import WatchEvent, WatchEventType
from xdscp.model import RouteTable
from xdscp.registry import RegistryState, parse_routes, routes_value
from xdscp.registry.schema import rejection_reason

ROOT = "/xdscp/services/"
ROUTES = "/xdscp/routes/"


def _put(key: str, value: object) -> WatchEvent:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return WatchEvent(WatchEventType.PUT, key.encode(), raw, 1)


def _no_dns(host: str) -> str | None:
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route_lists())
def test_a_stored_table_reads_back_the_same(routes: list[Any]) -> None:
    """`parse_routes(routes_value(t)) == t`."""
    table = RouteTable.from_list(routes)
    assert parse_routes(routes_value(table)) == table


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_documents() | st.dictionaries(st.text(max_size=8), hostile_documents(), max_size=3))
def test_any_stored_value_is_a_table_or_an_invalid_routes_rejection(doc: Any) -> None:
    """Whatever JSON is written at a routes key: a table, or a ValidationError whose metric
    label is one of the registry's (`invalid_routes` for the model's refusals)."""
    value = json.dumps({"routes": doc} if not isinstance(doc, dict) else doc).encode()
    try:
        table = parse_routes(value)
    except ValidationError as exc:
        reason = rejection_reason(exc)
    else:
        assert parse_routes(routes_value(table)) == table
        return
    assert reason in {"invalid_routes", "wrong_type", "invalid_json"}


def test_routes_key_sets_the_routes_and_a_bad_table_keeps_the_last_good() -> None:
    """`<routes>/<service>` gives the service its routes; an invalid table over it keeps the
    last good (the rejection says so); deleting it leaves the service without routes."""
    state = RegistryState()
    state.apply_native([_put(ROOT + "web/1", {"address": "10.0.0.1", "port": 80})])
    good = {"routes": [{"split": {"web": 90, "web-v2": 10}}]}
    assert state.apply_routes([_put(ROUTES + "web", good)]) == []
    services, _ = state.build(_no_dns)
    assert services["web"].routes == RouteTable.from_list(good["routes"])
    bad = {"routes": [{"split": {"web": 0}}]}
    rejections = state.apply_routes([_put(ROUTES + "web", bad)])
    assert [r.reason for r in rejections] == ["invalid_routes"]
    assert "routes[0].split" in rejections[0].message
    assert "last good routes" in rejections[0].message
    services, _ = state.build(_no_dns)
    assert services["web"].routes == RouteTable.from_list(good["routes"])
    state.apply_routes([WatchEvent(WatchEventType.DELETE, (ROUTES + "web").encode(), b"", 2)])
    services, _ = state.build(_no_dns)
    assert services["web"].routes is None


def test_routes_alone_do_not_make_a_service() -> None:
    """Routes stored for a service with no endpoint wait for it (no empty service appears)."""
    state = RegistryState()
    state.apply_routes([_put(ROUTES + "ghost", {"routes": [{"cluster": "web"}]})])
    services, _ = state.build(_no_dns)
    assert "ghost" not in services


def test_the_label_of_a_routes_error_is_invalid_routes() -> None:
    """A route table's refusal is counted as `invalid_routes`."""
    assert rejection_reason(ValidationError("routes[3].match.regex", "x")) == "invalid_routes"
