"""`routes:` in the `services:` document (static file, serve config, simulate): read with
the model's rules, errors at the line of the field at fault, and written back the same."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tests.harness.routes import hostile_documents, route_lists
from xdscp.errors import ConfigFieldError
from xdscp.model import Endpoint, RouteTable, Service
from xdscp.sources.services_doc import load_services, services_document

DOC = """\
services:
  web:
    endpoints: [{address: 10.0.0.1, port: 80}]
    routes:
      - match: {headers: [{name: x-canary, present: true}]}
        cluster: web-v2
      - split: {web: 90, web-v2: 10}
  web-v2:
    endpoints: [{address: 10.0.0.2, port: 80}]
"""


def test_routes_are_read_with_the_service() -> None:
    """The service gets its table; a service without `routes:` has none."""
    services = load_services(DOC, "s.yaml")
    assert services["web"].routes is not None
    assert services["web"].routes.targets == frozenset({"web", "web-v2"})
    assert services["web-v2"].routes is None


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("split: {web: 90, web-v2: 10}", "s.yaml:7: services.web.routes[1].split"),
        ("split: {web: 0}", "s.yaml:7: services.web.routes[1].split: weights must add up"),
        ("cluster: web\n        timeout: never", "s.yaml:8: services.web.routes[1].timeout"),
    ],
)
def test_a_bad_route_is_an_error_at_its_line(bad: str, expected: str) -> None:
    """The error is `FILE:LINE: services.NAME.routes[i].field: why`."""
    text = DOC.replace("split: {web: 90, web-v2: 10}", bad)
    if bad.startswith("split: {web: 90"):
        text = text.replace("      - match: {headers: [{name: x-canary, present: true}]}\n"
                            "        cluster: web-v2\n", "      - cluster: web-v2\n")  # fmt: skip
        expected = "s.yaml:6: services.web.routes[1]: can never match"
    with pytest.raises(ConfigFieldError) as info:
        load_services(text, "s.yaml")
    assert str(info.value).startswith(expected), str(info.value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route_lists())
def test_a_document_with_routes_round_trips(routes: list[Any]) -> None:
    """What `services_document` writes, `load_services` reads back the same."""
    table = RouteTable.from_list(routes)
    services = {
        "web": Service("web", (Endpoint("10.0.0.1", 80),), routes=table),
        "web-v2": Service("web-v2", (Endpoint("10.0.0.2", 80),)),
    }
    assert load_services(yaml.safe_dump(services_document(services))) == services


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_documents())
def test_any_hostile_routes_value_is_a_config_field_error(routes: Any) -> None:
    """Whatever `routes:` holds, the document loads (and round-trips) or fails with one
    ConfigFieldError located in the file, never another exception."""
    doc = {"services": {"web": {"endpoints": [{"address": "10.0.0.1", "port": 80}],
                                "routes": routes}}}  # fmt: skip
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:  # a value YAML cannot write (not the parser's concern)
        return
    try:
        services = load_services(text, "s.yaml")
    except ConfigFieldError as exc:
        where = exc.origin
    else:
        assert load_services(yaml.safe_dump(services_document(services))) == services
        return
    assert where.startswith("s.yaml:"), where
