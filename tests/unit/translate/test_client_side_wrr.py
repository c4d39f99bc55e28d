"""`client_side_weighted_round_robin` translated: Envoy's typed policy with every setting, and
for gRPC `wrr_locality([client_side_weighted_round_robin, round_robin])` over the service's
own localities (one picker weighs all the endpoints of a locality), no endpoint weights, and
notes saying how each client weighs."""

from __future__ import annotations

import os

from envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3 import (
    client_side_weighted_round_robin_pb2 as cswrr_pb2,
)
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2
from google.protobuf import text_format

from tests.harness.model import CSWRR, policy_world
from tests.harness.paths import GOLDEN
from xdscp.model import (
    BalancingPolicy,
    ClientKind,
    ClientSideWrr,
    Endpoint,
    LbPolicy,
    Locality,
    Service,
)
from xdscp.translate import cluster_for, load_assignment_for, translator_for
from xdscp.translate.grpc import grpc_cluster, grpc_load_assignment, grpc_warnings

UPDATE = os.environ.get("XDSCP_UPDATE_GOLDEN") == "1"
PREFIX = "envoy.load_balancing_policies."
ENDPOINTS = (
    Endpoint("10.0.0.1", 80, weight=1, locality=Locality(zone="a")),
    Endpoint("10.0.0.2", 80, weight=5, locality=Locality(zone="a")),
    Endpoint("10.0.0.3", 80, weight=9, locality=Locality(zone="b")),
)


def _service(settings: ClientSideWrr | None = CSWRR, **policy: object) -> Service:
    lb = LbPolicy.CLIENT_SIDE_WEIGHTED_ROUND_ROBIN
    chosen = BalancingPolicy(lb=lb, client_side_wrr=settings, **policy)  # type: ignore[arg-type]
    return Service("web", ENDPOINTS, chosen)


def _typed(entry: object) -> tuple[str, object]:
    config = entry.typed_extension_config  # type: ignore[attr-defined]
    return config.name, config.typed_config


def test_envoy_gets_the_typed_policy_with_every_setting() -> None:
    """Envoy: one entry, the typed ClientSideWeightedRoundRobin with each setting as given."""
    cluster = cluster_for(_service(slow_start={"window": "30s"}))
    (entry,) = cluster.load_balancing_policy.policies
    name, packed = _typed(entry)
    assert name == PREFIX + "client_side_weighted_round_robin"
    config = cswrr_pb2.ClientSideWeightedRoundRobin()
    assert packed.Unpack(config)  # type: ignore[attr-defined]
    assert config.enable_oob_load_report.value is True
    assert config.oob_reporting_period.ToMilliseconds() == 2000
    assert config.blackout_period.ToMilliseconds() == 1000
    assert config.weight_expiration_period.ToSeconds() == 180
    assert config.weight_update_period.ToMilliseconds() == 250
    assert config.error_utilization_penalty.value == 1.0
    assert list(config.metric_names_for_computing_utilization) == ["named_metrics.cost"]
    assert config.slow_start_config.slow_start_window.ToSeconds() == 30


def test_envoy_defaults_are_sent_explicitly() -> None:
    """Unset settings are A58's defaults, sent as values (what Envoy runs is on the wire)."""
    cluster = cluster_for(_service(None))
    config = cswrr_pb2.ClientSideWeightedRoundRobin()
    assert _typed(cluster.load_balancing_policy.policies[0])[1].Unpack(config)  # type: ignore[attr-defined]
    assert config.blackout_period.ToSeconds() == 10
    assert config.weight_update_period.ToSeconds() == 1
    assert config.enable_oob_load_report.value is False


def test_envoy_endpoints_carry_no_registered_weight() -> None:
    """The reports decide: registered weights are not sent (each endpoint weighs Envoy's 1)."""
    cla = load_assignment_for(_service())
    lb_endpoints = [lb for g in cla.endpoints for lb in g.lb_endpoints]
    assert len(lb_endpoints) == 3
    assert not any(lb.HasField("load_balancing_weight") for lb in lb_endpoints)


def test_grpc_gets_client_side_wrr_then_round_robin_inside_wrr_locality() -> None:
    """gRPC: wrr_locality whose endpoint picking list is [client_side_weighted_round_robin,
    round_robin] (the first the client supports wins)."""
    (entry,) = grpc_cluster(_service()).load_balancing_policy.policies
    name, packed = _typed(entry)
    assert name == PREFIX + "wrr_locality"
    wrapper = wrr_locality_pb2.WrrLocality()
    assert packed.Unpack(wrapper)  # type: ignore[attr-defined]
    first, fallback = wrapper.endpoint_picking_policy.policies
    config = cswrr_pb2.ClientSideWeightedRoundRobin()
    assert _typed(first)[0] == PREFIX + "client_side_weighted_round_robin"
    assert _typed(first)[1].Unpack(config)  # type: ignore[attr-defined]
    assert config.weight_update_period.ToMilliseconds() == 250
    assert _typed(fallback)[0] == PREFIX + "round_robin"
    assert _typed(fallback)[1].Unpack(round_robin_pb2.RoundRobin())  # type: ignore[attr-defined]


def test_grpc_localities_hold_their_endpoints_together() -> None:
    """One locality per (priority, locality), weighing its endpoint count, no endpoint
    weights: the endpoints of a locality share one weighing picker. (Weighted round robin's
    one locality per endpoint would leave each picker one endpoint to weigh.)"""
    cla = grpc_load_assignment(_service())
    groups = [
        (g.locality.zone, g.load_balancing_weight.value, len(g.lb_endpoints)) for g in cla.endpoints
    ]
    assert groups == [("a", 2, 2), ("b", 1, 1)]
    assert not any(
        lb.HasField("load_balancing_weight") for g in cla.endpoints for lb in g.lb_endpoints
    )


def test_notes_say_how_grpc_weighs() -> None:
    """The notes name the report path (trailer or out-of-band), the locality split when a
    priority spans several localities, and the Envoy-only settings."""
    (per_call,) = grpc_warnings(Service("web", ENDPOINTS[:2], _service(ClientSideWrr()).policy))
    assert "endpoint-load-metrics-bin trailer" in per_call
    trailer, localities = grpc_warnings(_service(ClientSideWrr()))
    assert trailer == per_call
    assert "picks a locality by its weight (its endpoint count)" in localities
    oob = grpc_warnings(_service())
    assert "OpenRcaService" in oob[0]
    assert "metric_names_for_computing_utilization" in oob[2]
    assert not grpc_warnings(Service("web", ENDPOINTS, BalancingPolicy()))


def test_the_locality_note_follows_the_endpoints() -> None:
    """The gRPC translator recomputes the notes when only the endpoints change: a second
    locality adds the note, its removal takes it away."""
    translator = translator_for(ClientKind.GRPC)
    one = _service(ClientSideWrr())
    single = Service("web", ENDPOINTS[:2], one.policy)
    translator.translate({"web": single})
    assert len(translator.notes["web"]) == 1
    translator.translate({"web": one})
    assert len(translator.notes["web"]) == 2
    translator.translate({"web": single})
    assert len(translator.notes["web"]) == 1


def test_golden_grpc_resources() -> None:
    """The gRPC Cluster and CLA of the policy world's `cswrr` equal the reviewed golden text
    (XDSCP_UPDATE_GOLDEN=1 rewrites it)."""
    service = policy_world()["cswrr"]
    text = (
        text_format.MessageToString(grpc_cluster(service))
        + "---\n"
        + text_format.MessageToString(grpc_load_assignment(service))
    )
    path = GOLDEN / "cswrr_grpc.txtpb"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()
