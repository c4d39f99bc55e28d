"""A real Envoy accepts the translated Clusters (EDS over ADS) and the HTTP Listener."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.model import policy_world
from tests.unit.translate.resilience_strategies import policies
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.model import BalancingPolicy, Service
from xdscp.procs import find_binary
from xdscp.translate import TranslateOptions, cluster_for, http_listener


@pytest.mark.envoy
def test_envoy_validates_every_translated_cluster_and_the_listener(tmp_path: Path) -> None:
    """`envoy --mode validate` accepts all policies' clusters (one with HTTP/2 upstreams) and
    the RDS-over-ADS listener (static copies of what xdscp serves, under xdscp's bootstrap)."""
    doc = envoy_bootstrap(
        EnvoyBootstrapOptions("validate", (XdsServer("127.0.0.1", 18000),), admin_port=0)
    )

    def as_json(message: object) -> dict[str, object]:
        return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))  # type: ignore[arg-type]

    services = list(policy_world().values())
    grpc = Service("grpc", services[0].endpoints, BalancingPolicy(upstream_protocol="http2"))  # type: ignore[arg-type]
    doc["static_resources"]["clusters"].extend(as_json(cluster_for(s)) for s in [*services, grpc])
    listener = http_listener(TranslateOptions(listener_address="127.0.0.1", listener_port=10000))
    doc["static_resources"]["listeners"] = [as_json(listener)]
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"configuration '{path}' OK" in done.stdout


def _validate(doc: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc))
    return subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.envoy
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(policies(), min_size=12, max_size=12))
def test_envoy_validates_any_resilience_policy(
    tmp_path: Path, drawn: list[BalancingPolicy]
) -> None:
    """Real Envoy's validation (its protoc-gen-validate rules and its own checks) accepts the
    Clusters and the routes of any valid resilience policies: outlier detection, health
    checks, slow start, circuit breakers, bounded load, retries and timeouts."""
    from xdscp.translate import route_configuration

    doc = envoy_bootstrap(
        EnvoyBootstrapOptions("validate", (XdsServer("127.0.0.1", 18000),), admin_port=0)
    )
    endpoints = next(iter(policy_world().values())).endpoints
    services = [Service(f"s{i}", endpoints, policy) for i, policy in enumerate(drawn)]
    doc["static_resources"]["clusters"].extend(_as_json(cluster_for(s)) for s in services)
    listener = _as_json(
        http_listener(TranslateOptions(listener_address="127.0.0.1", listener_port=10000))
    )
    routes = route_configuration(
        [s.name for s in services], TranslateOptions(), {s.name: s.policy for s in services}
    )
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[index]
    del manager["rds"]
    manager["route_config"] = _as_json(routes)
    doc["static_resources"]["listeners"] = [listener]
    done = _validate(doc, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _as_json(message: object) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))  # type: ignore[arg-type]
