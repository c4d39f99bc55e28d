"""The plane's load book (`PlaneLoad`): reports taken only for served endpoints of services
the reporting node receives, the rest counted by reason; measured rates and shares per
service; gRPC localities mapped to the endpoint they stand for; bounded whatever arrives."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import pytest
from envoy.config.core.v3 import base_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from xdscp.load import EndpointLoad, LoadBook, LoadReport
from xdscp.model import BalancingPolicy, ClientKind, Endpoint, LbPolicy, Locality, Service
from xdscp.plane.load import LoadMetrics, PlaneLoad
from xdscp.plane.view import Predictions, Predictor, with_measured

A, B, C = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
WEB = Service("web", tuple(Endpoint(k.split(":")[0], 80) for k in (A, B, C)))
API = Service("api", (Endpoint("10.0.0.1", 80),))
SERVICES = {"web": WEB, "api": API}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _receives(node: str, cluster: str) -> bool:
    """Node `envoy` receives `web`; `stranger` receives nothing."""
    return node == "envoy" and cluster == "web"


def _load(
    max_entries: int = 100, clock: Clock | None = None
) -> tuple[PlaneLoad, CollectorRegistry]:
    registry = CollectorRegistry()
    load = PlaneLoad(
        LoadBook(stale_after_s=30, max_entries=max_entries), LoadMetrics(registry),
        lambda: SERVICES, _receives, clock=clock or Clock(),
    )  # fmt: skip
    return load, registry


def _report(*loads: tuple[str, str, int], interval_s: float = 1.0) -> LoadReport:
    return LoadReport("n", interval_s, tuple(EndpointLoad(c, e, n, 0) for c, e, n in loads))


def _refused(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("xdscp_load_reports_refused_total", {"reason": reason})
    return value or 0.0


def test_measured_rates_and_shares_of_a_service() -> None:
    load, registry = _load()
    load.reports("envoy#1", [_report(("web", A, 10), ("web", B, 30))])
    load.reports("envoy#2", [_report(("web", B, 10), ("web", C, 50))])
    assert load.measured() == {"web": {A: (10.0, 0.1), B: (40.0, 0.4), C: (50.0, 0.5)}}
    assert registry.get_sample_value("xdscp_load_reports_taken_total") == 4
    assert registry.get_sample_value("xdscp_lrs_streams") == 2
    load.stream_ended("envoy#2")
    assert load.measured() == {"web": {A: (10.0, 0.25), B: (30.0, 0.75)}}
    assert registry.get_sample_value("xdscp_lrs_streams") == 1


def test_unknown_endpoints_clusters_and_services_the_node_does_not_receive_are_refused() -> None:
    load, registry = _load()
    load.reports("envoy#1", [_report(("web", "10.9.9.9:80", 5), ("api", A, 5), ("xds", A, 1))])
    load.reports("stranger#2", [_report(("web", A, 5))])
    assert load.measured() == {}
    assert len(load.book) == 0
    assert _refused(registry, "unknown_endpoint") == 1
    assert _refused(registry, "unknown_cluster") == 1  # Envoy's own xDS cluster, say
    assert _refused(registry, "not_received") == 2  # api for envoy, web for the stranger
    assert registry.get_sample_value("xdscp_load_reports_taken_total") == 0


def test_a_service_no_longer_served_is_not_shown() -> None:
    load, _ = _load()
    load.reports("envoy#1", [_report(("web", A, 5))])
    SERVICES.pop("web")
    try:
        assert load.measured() == {}
    finally:
        SERVICES["web"] = WEB
    assert load.measured() == {"web": {A: (5.0, 1.0)}}


def test_grpc_localities_map_to_the_endpoint_they_stand_for() -> None:
    """gRPC reports per locality: one stands for an endpoint when it has a locality of its
    own (weighted round robin's) or is the only one there; else it is refused, counted."""
    shared = Locality("r", "z", "s")
    alone = Locality("r", "z2", "")
    service = Service("web", (
        Endpoint("10.0.0.1", 80, locality=shared), Endpoint("10.0.0.2", 80, locality=shared),
        Endpoint("10.0.0.3", 80, locality=alone),
    ))  # fmt: skip
    registry = CollectorRegistry()
    load = PlaneLoad(LoadBook(30), LoadMetrics(registry), lambda: {"web": service}, _receives)

    def of(region: str, zone: str, sub_zone: str, cluster: str = "web") -> str | None:
        locality = base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone)
        return load.endpoint_of(cluster, locality)

    assert of("r", "z", f"s/{A}") == A  # an own locality (weighted round robin's)
    assert of("r", "z", "s") is None  # two endpoints share it: no one endpoint
    assert of("r", "z2", "") == C  # the only endpoint there
    assert of("r", "z", "s/10.9.9.9:80") is None
    assert of("r", "z2", "", cluster="api") is None
    assert _refused(registry, "unmapped_locality") == 2  # a gRPC locality of many: not counted
    assert _refused(registry, "unknown_cluster") == 1


hostile_loads = st.builds(
    EndpointLoad,
    cluster=st.sampled_from(["web", "api", "", "\x00" * 3, "w" * 500]),
    endpoint=st.sampled_from([A, B, C, "10.9.9.9:80", "", "[::1]:1"]) | st.text(max_size=30),
    successful=st.integers(-(2**63), 2**64),
    errors=st.integers(-(2**63), 2**64),
    utilization_total=st.floats(allow_nan=True, allow_infinity=True),
    utilization_requests=st.integers(-(2**63), 2**64),
)
hostile = st.tuples(
    st.sampled_from(["envoy#1", "envoy#2", "stranger#3", "#", "", "a#b#c"]),
    st.lists(
        st.builds(LoadReport, node=st.text(max_size=5),
                  interval_s=st.floats(allow_nan=True, allow_infinity=True) | st.just(1.0),
                  loads=st.lists(hostile_loads, max_size=6).map(tuple)),
        max_size=4,
    ),
    st.booleans(),  # the stream ends after it
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(hostile, max_size=40))
def test_hostile_reports_change_only_what_they_may_and_stay_bounded(
    streams: list[tuple[str, list[LoadReport], bool]],
) -> None:
    """Whatever reporters send: at most `max_entries` held; only served endpoints of
    services the reporter's node receives; every load taken or refused (counted); the
    measured rates finite and within bounds, the shares a split; a reporter's entries go
    with its stream."""
    clock = Clock()
    load, registry = _load(max_entries=5, clock=clock)
    offered = 0
    for reporter, reports, ends in streams:
        clock.now += 1.0
        load.reports(reporter, reports)
        offered += sum(len(r.loads) for r in reports)
        if ends:
            load.stream_ended(reporter)
            assert all(key[0] != reporter for key in load.book.held())
        assert len(load.book) <= 5
    for reporter, cluster, endpoint in load.book.held():
        assert _receives(reporter.rpartition("#")[0], cluster)
        assert endpoint in {A, B, C}
    taken = registry.get_sample_value("xdscp_load_reports_taken_total") or 0.0
    refused = sum(
        _refused(registry, r)
        for r in (
            "unknown_cluster",
            "unknown_endpoint",
            "not_received",
            "implausible",
            "interval",
            "full",
        )
    )
    assert taken + refused == offered
    for rates in load.measured().values():
        assert all(math.isfinite(rps) and 0 <= rps <= 1e9 * 2 for rps, _ in rates.values())
        shares = [share for _, share in rates.values()]
        assert all(0 <= s <= 1 for s in shares)
        assert sum(shares) == 0 or math.isclose(sum(shares), 1)


def test_a_flood_from_a_stranger_changes_nothing_held() -> None:
    load, registry = _load(max_entries=10)
    load.reports("envoy#1", [_report(("web", A, 10))])
    before = load.book.held()
    flood = _report(*[("web", A, 10**9)] * 1000)
    for _ in range(100):
        load.reports("stranger#2", [flood, replace(flood, interval_s=math.nan)])
    assert load.book.held() == before
    assert _refused(registry, "not_received") == 100 * 2000


async def test_predicted_shares_are_computed_off_the_event_loop_then_announced() -> None:
    """The services view never computes a split on the event loop: the first ask answers
    None and starts it in a thread; once done, `on_ready` is called and the shares are
    there."""
    ready = asyncio.Event()
    predictions = Predictions(Predictor(), ready.set)
    assert predictions.shares(WEB) is None
    assert predictions.shares(WEB) is None  # one computation, however often asked
    await asyncio.wait_for(ready.wait(), 30)
    assert predictions.shares(WEB) == pytest.approx({A: 1 / 3, B: 1 / 3, C: 1 / 3}, abs=0.01)


def test_without_an_event_loop_the_shares_are_computed_at_once() -> None:
    assert Predictions(Predictor(), None).shares(WEB) == pytest.approx(
        {A: 1 / 3, B: 1 / 3, C: 1 / 3}, abs=0.01
    )


class _Refusing(Predictor):
    """A predictor whose balancer refuses every service, counting the tries."""

    tries = 0

    def split(self, service: Service, client: object, requests: int) -> dict[str, object]:
        self.tries += 1
        raise ValueError("the client would reject this configuration")


async def test_a_split_the_balancer_refuses_is_null_and_not_tried_again() -> None:
    ready = asyncio.Event()
    predictor = _Refusing()
    predictions = Predictions(predictor, ready.set)
    assert predictions.shares(WEB) is None
    await asyncio.wait_for(ready.wait(), 30)
    assert predictions.shares(WEB) is None
    assert predictor.tries == 1


# Three endpoints in zones a, a, b of weights 1, 2, 4 under least request: Envoy splits by
# weight (1/7, 2/7, 4/7); a gRPC client ignores the weights (about a third each).
ZONED = Service(
    "web",
    tuple(
        Endpoint(k.split(":")[0], 80, weight=w, locality=Locality(zone=z))
        for k, w, z in ((A, 1, "a"), (B, 2, "a"), (C, 4, "b"))
    ),
    BalancingPolicy(lb=LbPolicy.LEAST_REQUEST),
)
ENVOY_SPLIT = {A: 1 / 7, B: 2 / 7, C: 4 / 7}
GRPC_SPLIT = {A: 1 / 3, B: 1 / 3, C: 1 / 3}
PREDICTIONS = Predictions(Predictor(), None)  # computed at once (no event loop), then cached


def _kinds_load() -> PlaneLoad:
    """Nodes `envoy-*` are Envoys, `grpc-*` gRPC clients; every node receives `web`."""
    kinds = {"envoy": ClientKind.ENVOY, "grpc": ClientKind.GRPC}
    return PlaneLoad(
        LoadBook(stale_after_s=30), LoadMetrics(CollectorRegistry()), lambda: {"web": ZONED},
        lambda node, cluster: True, clock=Clock(),
        kind_of=lambda node: kinds.get(node.partition("-")[0]),
    )  # fmt: skip


def test_the_worlds_envoy_and_grpc_predictions_differ() -> None:
    envoy = PREDICTIONS.shares(ZONED, {ClientKind.ENVOY: 1.0})
    grpc = PREDICTIONS.shares(ZONED, {ClientKind.GRPC: 1.0})
    assert envoy == pytest.approx(ENVOY_SPLIT, abs=0.01)
    assert grpc == pytest.approx(GRPC_SPLIT, abs=0.01)


def test_a_grpc_only_fleet_is_compared_with_grpcs_prediction() -> None:
    load = _kinds_load()
    load.reports("grpc-1#1", [_report(("web", A, 30), ("web", B, 30), ("web", C, 30))])
    mix = load.kinds()["web"]
    assert mix == {ClientKind.GRPC: 1.0}
    predicted = PREDICTIONS.shares(ZONED, mix)
    assert predicted == pytest.approx(GRPC_SPLIT, abs=0.01)
    shown = with_measured(
        {"endpoints": [{"key": k} for k in (A, B, C)]}, load.measured()["web"], predicted, mix
    )
    assert shown["load"] == {"rps": 90.0, "predicted_by": {"grpc": 1.0}}
    assert [e["predicted_share"] for e in shown["endpoints"]] == [predicted[k] for k in (A, B, C)]


def test_a_mixed_fleet_is_compared_with_the_mix_of_predictions() -> None:
    """An Envoy sends 25 rps, a gRPC client 75: a quarter of Envoy's split, three quarters
    of gRPC's."""
    load = _kinds_load()
    load.reports("envoy-1#1", [_report(("web", A, 5), ("web", B, 5), ("web", C, 15))])
    load.reports("grpc-1#2", [_report(("web", A, 25), ("web", B, 25), ("web", C, 25))])
    mix = load.kinds()["web"]
    assert mix == {ClientKind.ENVOY: 0.25, ClientKind.GRPC: 0.75}
    predicted = PREDICTIONS.shares(ZONED, mix)
    assert predicted is not None
    envoy = PREDICTIONS.shares(ZONED, {ClientKind.ENVOY: 1.0}) or {}
    grpc = PREDICTIONS.shares(ZONED, {ClientKind.GRPC: 1.0}) or {}
    for key in (A, B, C):
        assert predicted[key] == pytest.approx(0.25 * envoy[key] + 0.75 * grpc[key])
    shown = with_measured({"endpoints": [{"key": A}]}, load.measured()["web"], predicted, mix)
    assert shown["load"]["predicted_by"] == {"envoy": 0.25, "grpc": 0.75}
    load.stream_ended("grpc-1#2")  # the gRPC client goes: Envoy's prediction alone
    assert load.kinds()["web"] == {ClientKind.ENVOY: 1.0}


def test_a_reporter_of_unknown_kind_counts_as_envoy_and_idle_reporters_count_alike() -> None:
    load = _kinds_load()
    load.reports("other-1#1", [_report(("web", A, 0))])
    load.reports("grpc-1#2", [_report(("web", B, 0))])
    assert load.kinds()["web"] == {ClientKind.ENVOY: 0.5, ClientKind.GRPC: 0.5}


@settings(max_examples=50, deadline=None)
@given(envoy_rps=st.integers(0, 10**6), grpc_rps=st.integers(0, 10**6))
def test_a_mixed_prediction_sums_to_one_between_the_kinds_predictions(
    envoy_rps: int, grpc_rps: int
) -> None:
    load = _kinds_load()
    load.reports("envoy-1#1", [_report(("web", A, envoy_rps))])
    load.reports("grpc-1#2", [_report(("web", C, grpc_rps))])
    mix = load.kinds()["web"]
    assert math.isclose(sum(mix.values()), 1)
    predicted = PREDICTIONS.shares(ZONED, mix)
    assert predicted is not None
    assert math.isclose(sum(predicted.values()), 1, abs_tol=1e-9)
    envoy = PREDICTIONS.shares(ZONED, {ClientKind.ENVOY: 1.0}) or {}
    grpc = PREDICTIONS.shares(ZONED, {ClientKind.GRPC: 1.0}) or {}
    for key, share in predicted.items():
        low, high = sorted((envoy[key], grpc[key]))
        assert low - 1e-9 <= share <= high + 1e-9
