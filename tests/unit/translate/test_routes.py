"""Routes → Envoy's and gRPC's RouteConfigurations: golden text, targets cut to the served
services (and translated again when one comes or goes), the fault filter, Envoy's own
validation of any valid table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, json_format, text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.paths import GOLDEN
from tests.harness.routes import GRPC_CANARY_ROUTES, canary_world, route_lists
from xdscp.cache import TypeUrl
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.model import ClientKind, Endpoint, RouteTable, Service
from xdscp.procs import find_binary
from xdscp.translate import (
    TranslateOptions,
    cluster_for,
    http_listener,
    route_configuration,
    translate,
    translator_for,
)
from xdscp.translate.routes import FAULT_FILTER, served_routes

UPDATE = os.environ.get("XDSCP_UPDATE_GOLDEN") == "1"


def _unpack(snapshot: Any, type_url: TypeUrl, name: str, message: Any) -> Any:
    wrapped = any_pb2.Any.FromString(snapshot.resources[type_url][name].any_bytes)
    assert wrapped.Unpack(message)
    return message


def _envoy_host(snapshot: Any, name: str) -> Any:
    config = _unpack(
        snapshot, TypeUrl.ROUTE, TranslateOptions().route_name, route_pb2.RouteConfiguration()
    )
    return next(h for h in config.virtual_hosts if h.name == name)


def _grpc_routes(snapshot: Any, name: str) -> Any:
    return _unpack(snapshot, TypeUrl.ROUTE, name, route_pb2.RouteConfiguration())


def _golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txtpb"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def test_golden_envoy_routes() -> None:
    """The canary's Envoy virtual host equals the reviewed golden text."""
    snapshot = translate(canary_world()).snapshot
    _golden("routes_envoy", text_format.MessageToString(_envoy_host(snapshot, "web")))


def test_golden_grpc_routes_and_listener() -> None:
    """The gRPC canary's RouteConfiguration and Listener (fault filter, optional, before the
    router) equal the reviewed golden text."""
    snapshot = translate(canary_world(GRPC_CANARY_ROUTES), client=ClientKind.GRPC).snapshot
    listener = _unpack(snapshot, TypeUrl.LISTENER, "web", listener_pb2.Listener())
    manager = hcm_pb2.HttpConnectionManager()
    assert listener.api_listener.api_listener.Unpack(manager)
    text = (
        text_format.MessageToString(_grpc_routes(snapshot, "web"))
        + "---\n"
        + text_format.MessageToString(manager)
    )
    _golden("routes_grpc", text)


def test_services_without_routes_keep_their_one_route() -> None:
    """A service without routes is translated exactly as before (one route to itself), and
    its gRPC listener has no fault filter."""
    world = canary_world()
    snapshot = translate(world, client=ClientKind.GRPC).snapshot
    routes = _grpc_routes(snapshot, "web-v2").virtual_hosts[0].routes
    assert len(routes) == 1
    assert routes[0].route.cluster == "web-v2"
    assert routes[0].match.prefix == ""
    listener = _unpack(snapshot, TypeUrl.LISTENER, "web-v2", listener_pb2.Listener())
    manager = hcm_pb2.HttpConnectionManager()
    listener.api_listener.api_listener.Unpack(manager)
    assert [f.name for f in manager.http_filters] == ["envoy.filters.http.router"]


def test_envoy_listener_has_the_fault_filter_before_the_router() -> None:
    """The fault filter is always in Envoy's chain (a route's fault never changes the
    listener), before the router."""
    manager = hcm_pb2.HttpConnectionManager()
    http_listener().filter_chains[0].filters[0].typed_config.Unpack(manager)
    assert [f.name for f in manager.http_filters] == [FAULT_FILTER, "envoy.filters.http.router"]


@pytest.mark.parametrize("kind", [ClientKind.ENVOY, ClientKind.GRPC])
def test_a_target_not_served_is_left_out_until_it_comes(kind: ClientKind) -> None:
    """Without web-v2, web's routes name only web (the route to web-v2 alone is dropped, the
    split keeps web) and a note says why; when web-v2 registers, web is translated again
    with it, and when it goes, again without it."""
    world = canary_world()
    alone = {"web": world["web"]}
    translator = translator_for(kind)

    def clusters() -> set[str]:
        if kind is ClientKind.ENVOY:
            host = _envoy_host(translator.translate(current).snapshot, "web")
        else:
            host = _grpc_routes(translator.translate(current).snapshot, "web").virtual_hosts[0]
        named = set()
        for route in host.routes:
            named.add(route.route.cluster) if route.route.cluster else named.update(
                c.name for c in route.route.weighted_clusters.clusters
            )
        return named

    current = alone
    assert clusters() == {"web"}
    assert any("web-v2 not served" in n for n in translator.notes["web"])
    current = world
    assert clusters() == {"web", "web-v2"}
    assert not any(n.startswith("routes:") for n in translator.notes.get("web", ()))
    current = alone
    assert clusters() == {"web"}


def test_a_dropped_catch_all_leaves_the_default_route() -> None:
    """A table whose catch-all names only a service not served (yet) still routes every
    request: to the service itself, until the target comes; then the catch-all is served."""
    service = Service("web", routes=RouteTable.from_list([{"cluster": "web-v2"}]))
    alone = served_routes(service, {"web"})
    assert [(r.cluster, r.match.matches_all) for r in alone] == [("web", True)]
    both = served_routes(service, {"web", "web-v2"})
    assert [(r.cluster, r.match.matches_all) for r in both] == [("web-v2", True)]


def test_versions_are_the_same_for_the_same_routes() -> None:
    """Two translators, the same routes: the same versions (content hashes)."""
    for kind in ClientKind:
        one = translate(canary_world(), client=kind).snapshot.versions
        two = translator_for(kind).translate(canary_world()).snapshot.versions
        assert one == two


def test_fault_percentages_are_per_million() -> None:
    """A fault's percentage is exact to 0.0001 % (numerator per million)."""
    routes = [{"cluster": "web", "fault": {"abort": {"http_status": 503, "percent": 12.3456},
                                           "delay": {"fixed": "1.5s", "percent": 50}}}]  # fmt: skip
    host = _envoy_host(translate(canary_world(routes)).snapshot, "web")
    config = host.routes[0].typed_per_filter_config[FAULT_FILTER]
    assert config.type_url.endswith("HTTPFault")
    text = str(json_format.MessageToDict(host.routes[0]))
    assert "123456" in text
    assert "500000" in text


def _as_json(message: object) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))  # type: ignore[arg-type]


@pytest.mark.envoy
@settings(
    max_examples=6, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(st.lists(route_lists(("s0", "s1", "s2")), min_size=3, max_size=3))
def test_envoy_validates_any_route_table(tmp_path: Path, drawn: list[list[Any]]) -> None:
    """`envoy --mode validate` (its proto rules, RE2 limits, cluster references) accepts the
    virtual hosts of any valid route tables, under the listener xdscp serves."""
    doc = envoy_bootstrap(
        EnvoyBootstrapOptions("validate", (XdsServer("127.0.0.1", 18000),), admin_port=0)
    )
    base = canary_world()["web"].endpoints
    services = {
        f"s{i}": Service(f"s{i}", base, routes=RouteTable.from_list(routes))
        for i, routes in enumerate(drawn)
    }
    doc["static_resources"]["clusters"].extend(_as_json(cluster_for(s)) for s in services.values())
    listener = _as_json(
        http_listener(TranslateOptions(listener_address="127.0.0.1", listener_port=10000))
    )
    config = route_configuration(sorted(services), TranslateOptions(), None, services)
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    del manager["rds"]
    manager["route_config"] = _as_json(config)
    doc["static_resources"]["listeners"] = [listener]
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("kind", [ClientKind.ENVOY, ClientKind.GRPC])
def test_a_missing_target_is_logged_once(kind: ClientKind) -> None:
    """`route_target_missing` is logged when the target goes missing, not at every rebuild
    of the service (an endpoint change keeps the note without a new warning)."""
    world = canary_world()
    translator = translator_for(kind)
    with structlog.testing.capture_logs() as logs:
        translator.translate({"web": world["web"]})
        moved = Service("web", world["web"].endpoints[:1], routes=world["web"].routes)
        translator.translate({"web": moved})
    warned = [e for e in logs if e["event"] == "route_target_missing"]
    assert len(warned) == 1, logs
    assert any("web-v2 not served" in n for n in translator.notes["web"])


_NAMES = ("a", "b", "c")
_STEP = st.dictionaries(
    st.sampled_from(_NAMES),
    st.tuples(st.integers(1, 3), st.none() | st.lists(st.sampled_from(_NAMES), min_size=1,
                                                      max_size=3, unique=True)),
    max_size=3,
)  # fmt: skip


def _routed(name: str, count: int, targets: list[str] | None) -> Service:
    endpoints = tuple(Endpoint(f"10.0.0.{i + 1}", 80) for i in range(count))
    if targets is None:
        return Service(name, endpoints)
    routes = [{"match": {"prefix": "/one/"}, "cluster": targets[0]},
              {"split": dict.fromkeys(targets, 1)}]  # fmt: skip
    return Service(name, endpoints, routes=RouteTable.from_list(routes))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=1, max_size=8), st.sampled_from(list(ClientKind)), st.booleans())
def test_incremental_translation_with_routes_equals_one_shot(
    steps: list[dict[str, tuple[int, list[str] | None]]], kind: ClientKind, hinted: bool
) -> None:
    """Services whose routes name each other coming and going, translated incrementally
    (with or without the sources' change hint): at every step the very snapshot a fresh
    translator gives (and the same notes), so a route never keeps a target that went nor
    misses one that came."""
    translator = translator_for(kind)
    kept: dict[str, Service] = {}
    for step in steps:
        services = {}
        for name, (count, targets) in step.items():
            candidate = _routed(name, count, targets)
            old = kept.get(name)
            services[name] = old if old == candidate else candidate  # sources keep identity
        changed = {n for n in services.keys() | kept.keys() if services.get(n) is not kept.get(n)}
        kept = services
        got = translator.translate(services, changed if hinted else None).snapshot
        fresh = translator_for(kind)
        want = fresh.translate(services).snapshot
        assert dict(translator.notes) == dict(fresh.notes)
        assert dict(got.versions) == dict(want.versions)
        for type_url in TypeUrl:
            assert set(got.resources[type_url]) == set(want.resources[type_url])
            for name, resource in want.resources[type_url].items():
                assert got.resources[type_url][name].any_bytes == resource.any_bytes
