"""The pipeline's load input (`apply_loads`): an adaptive service's computed weights reach
every client kind's snapshot, deterministically, and only a decision that changes the served
weights costs a push. No event loop, no port."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import any_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.balancer import build_balancer
from xdscp.cache import Snapshot, TypeUrl
from xdscp.load import RESOLUTION, LoadBook, LoadSample
from xdscp.load.reports import EndpointLoad, LoadReport
from xdscp.model import (
    AdaptiveSettings,
    BalancingPolicy,
    ClientKind,
    Endpoint,
    LbPolicy,
    ReportedLoad,
    Service,
)
from xdscp.plane.pipeline import Pipeline
from xdscp.translate import translator_for

FAST = AdaptiveSettings(min_push_interval=1.0, max_step=100.0, smoothing=1.0)
CAPACITY = {"10.0.0.1:80": 100.0, "10.0.0.2:80": 200.0, "10.0.0.3:80": 400.0}
WALL = 1_765_000_000.0


def _service(
    lb: LbPolicy = LbPolicy.WEIGHTED_ROUND_ROBIN,
    settings_: AdaptiveSettings | None = FAST,
    loads: Mapping[str, ReportedLoad] | None = None,
) -> Service:
    endpoints = tuple(
        Endpoint(f"10.0.0.{i}", 80, load=(loads or {}).get(f"10.0.0.{i}:80")) for i in (1, 2, 3)
    )
    return Service("web", endpoints, BalancingPolicy(lb=lb, adaptive_weights=settings_))


def _pipeline(service: Service) -> Pipeline:
    pipe = Pipeline(("static",), {kind: translator_for(kind) for kind in ClientKind})
    pipe.publish(0, {"web": service})
    pipe.merge()
    return pipe


def _snapshot(pipe: Pipeline, kind: ClientKind) -> Snapshot:
    built = pipe.build(kind)
    assert built is not None
    return built.result.snapshot


def _unpack(snapshot: Snapshot, url: TypeUrl, message: type) -> object:
    wrapped = any_pb2.Any.FromString(snapshot.resources[url]["web"].any_bytes)
    out = message()
    wrapped.Unpack(out)
    return out


def _shares(snapshot: Snapshot, kind: ClientKind, picks: int = 14_000) -> dict[str, float]:
    """What the client of `kind` would do with this snapshot (the reference balancer)."""
    cluster = _unpack(snapshot, TypeUrl.CLUSTER, cluster_pb2.Cluster)
    cla = _unpack(snapshot, TypeUrl.ENDPOINT, endpoint_pb2.ClusterLoadAssignment)
    lb = build_balancer(cluster, cla, client=kind, rng=random.Random(3))
    counted = Counter(str(lb.choose(None)) for _ in range(picks))
    return {k: v / picks for k, v in sorted(counted.items())}


def _tick(pipe: Pipeline, now: float, load: float = 700.0) -> frozenset[str]:
    """Each backend reports the share of `load` its served weight gives it and the
    utilization that is for its capacity (as `xdscp backend --capacity` does)."""
    served = {e.key: e.weight for e in pipe.services["web"].endpoints}
    total = sum(served.values())
    samples = []
    for key, weight in served.items():
        rps = load * weight / total
        samples.append(LoadSample(key, now, rps, rps / CAPACITY[key]))
    return pipe.apply_loads({"web": samples}, now, WALL)


def test_computed_weights_reach_envoy_and_grpc_and_both_follow_them() -> None:
    """Equal registered weights, capacities 1:2:4: both kinds' balancers converge to 1/7,
    2/7, 4/7 (gRPC through its one locality per endpoint)."""
    pipe = _pipeline(_service())
    for i in range(6):
        _tick(pipe, float(i))
    weights = pipe.weights.weights("web")
    assert weights == {"10.0.0.1:80": 250, "10.0.0.2:80": 500, "10.0.0.3:80": RESOLUTION}
    for kind in ClientKind:
        shares = _shares(_snapshot(pipe, kind), kind)
        for key, expected in zip(CAPACITY, (1 / 7, 2 / 7, 4 / 7), strict=True):
            assert shares[key] == pytest.approx(expected, abs=0.02), (kind, shares)


def test_a_push_only_when_the_served_weights_change() -> None:
    """Converged: ticks push nothing, no kind owes a build, the versions stay."""
    pipe = _pipeline(_service())
    for i in range(6):
        _tick(pipe, float(i))
    before = {kind: _snapshot(pipe, kind).versions for kind in ClientKind}
    assert [_tick(pipe, float(i)) for i in range(6, 30)] == [frozenset()] * 24
    assert all(pipe.build(kind) is None for kind in ClientKind)
    assert before[ClientKind.ENVOY][TypeUrl.ENDPOINT]


def test_same_inputs_same_versions() -> None:
    """Two pipelines fed the same samples at the same times: byte-identical snapshots."""
    pipes = [_pipeline(_service()) for _ in range(2)]
    for pipe in pipes:
        for i in range(4):
            _tick(pipe, float(i), load=350.0)
    for kind in ClientKind:
        first, second = (_snapshot(p, kind) for p in pipes)
        assert first.versions == second.versions


def test_registered_loads_alone_drive_the_weights() -> None:
    """No client reports: the endpoints' own utilization (no rps: their weight stands for
    their rate) converges to the capacities too; a stale one falls back."""
    pipe = _pipeline(_service())
    for i in range(12):
        served = {e.key: e.weight for e in pipe.services["web"].endpoints}
        total = sum(served.values())
        loads = {k: ReportedLoad(700 * w / total / CAPACITY[k], None, WALL + i)
                 for k, w in served.items()}  # fmt: skip
        pipe.publish(0, {"web": _service(loads=loads)})
        pipe.merge()
        pipe.apply_loads({}, float(i), WALL + i)
    weights = pipe.weights.weights("web")
    assert weights is not None
    assert list(weights.values()) == pytest.approx([250, 500, 1000], abs=3)
    # nobody refreshes: past stale_after, the registered weights (equal) come back
    late = 12 + FAST.stale_after + 1
    assert pipe.apply_loads({}, late, WALL + late) == {"web"}
    assert set(pipe.weights.weights("web").values()) == {RESOLUTION}  # type: ignore[union-attr]


def test_client_samples_from_a_load_book() -> None:
    """An LRS `LoadBook` filled directly: its samples, per cluster (= service), drive it."""
    pipe = _pipeline(_service())
    book = LoadBook(stale_after_s=30)
    for i in range(8):
        served = {e.key: e.weight for e in pipe.services["web"].endpoints}
        total = sum(served.values())
        loads = []
        for key, weight in served.items():
            sent = round(700 * weight / total)
            utilization = sent / CAPACITY[key]
            loads.append(EndpointLoad("web", key, sent, 0, utilization * sent, sent))
        book.record("envoy-1", LoadReport("envoy-1", 1.0, tuple(loads)), float(i),
                    lambda c, e: c == "web")  # fmt: skip
        pipe.apply_loads(book.samples(float(i)), float(i), WALL)
    assert pipe.weights.weights("web") == pytest.approx(
        {"10.0.0.1:80": 250, "10.0.0.2:80": 500, "10.0.0.3:80": 1000}, abs=3
    )


def test_a_service_not_adaptive_is_never_touched() -> None:
    pipe = _pipeline(_service(settings_=None))
    served = pipe.services["web"]
    assert pipe.apply_loads({"web": [LoadSample("10.0.0.1:80", 0.0, 10, 0.5)]}, 0.0, WALL) == set()
    assert pipe.services["web"] is served
    assert pipe.weights.adaptive == frozenset()


def test_endpoints_added_keep_the_computed_scale() -> None:
    """An endpoint registered after a push serves at its registered weight in the loop's
    units, not at 1 beside weights of 1000."""
    pipe = _pipeline(_service())
    for i in range(6):
        _tick(pipe, float(i))
    grown = _service()
    grown = Service("web", (*grown.endpoints, Endpoint("10.0.0.4", 80)), grown.policy)
    pipe.publish(0, {"web": grown})
    pipe.merge()
    weights = pipe.weights.weights("web")
    assert weights is not None
    # registered units: the three sum to 3 (1/7, 2/7, 4/7 of it), the new one weighs 1
    assert weights["10.0.0.4:80"] == pytest.approx(weights["10.0.0.3:80"] * 7 / 12, abs=2)


@settings(deadline=None, max_examples=40)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(CAPACITY)),
            st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1e12]),
            st.sampled_from(["rps", "utilization", "eps"]),
        ),
        max_size=6,
    )
)
def test_garbage_samples_change_nothing(bad: list[tuple[str, float, str]]) -> None:
    """NaN, infinite, negative, zero or huge values: ignored, the served weights as before."""
    pipe = _pipeline(_service())
    before = pipe.weights.weights("web")
    samples = []
    for key, value, field in bad:
        fields = {"rps": 10.0, "utilization": 0.5, "eps": 0.0, field: value}
        samples.append(LoadSample(key, 0.0, **fields))
    pipe.apply_loads({"web": samples}, 0.0, WALL)
    assert pipe.weights.weights("web") == before
    assert set(before.values()) == {RESOLUTION}  # type: ignore[union-attr]


@pytest.mark.parametrize("lb", [LbPolicy.MAGLEV, LbPolicy.RING_HASH, LbPolicy.WEIGHTED_RANDOM])
def test_weighted_hash_policies_follow_the_computed_weights_in_both_kinds(lb: LbPolicy) -> None:
    pipe = _pipeline(_service(lb))
    for i in range(6):
        _tick(pipe, float(i))
    for kind in ClientKind:
        shares = _shares(_snapshot(pipe, kind), kind)
        for key, expected in zip(CAPACITY, (1 / 7, 2 / 7, 4 / 7), strict=True):
            assert shares[key] == pytest.approx(expected, abs=0.04), (kind, lb, shares)


def _registered(pipe: Pipeline, at: float, with_rps: bool) -> dict[str, ReportedLoad]:
    """What the three backends register at wall time `at`: the share the weights `pipe`
    serves gives each, and the utilization that is for its capacity."""
    served = {e.key: e.weight for e in pipe.services["web"].endpoints}
    total = sum(served.values())
    loads = {}
    for key, weight in served.items():
        rps = 700 * weight / total
        loads[key] = ReportedLoad(rps / CAPACITY[key], rps if with_rps else None, at)
    return loads


def test_replicas_fed_the_same_registrations_serve_identical_versions() -> None:
    """Two replicas watching the same registry (one etcd: the same registered loads), started
    5.3 s apart and ticking out of phase with each other: once converged, the same weights
    and byte-identical snapshots (same versions) for every client kind. The registrants
    follow the weights replica A serves (its clients are the ones sending)."""
    settings_ = AdaptiveSettings(min_push_interval=1.0)
    a, b = (_pipeline(_service(settings_=settings_)) for _ in range(2))
    for step in range(80):
        wall = WALL + step * 0.5
        loads = _registered(a, wall, with_rps=True)
        for pipe, start, phase in ((a, 0.0, 0.0), (b, 5.3, 0.37)):
            pipe.publish(0, {"web": _service(settings_=settings_, loads=loads)})
            pipe.merge()
            if step * 0.5 >= start:
                pipe.apply_loads({}, 1000.0 + step * 0.5 + phase, wall)
    assert a.weights.weights("web") == b.weights.weights("web") == {
        "10.0.0.1:80": 250, "10.0.0.2:80": 500, "10.0.0.3:80": 1000,
    }  # fmt: skip
    for kind in ClientKind:
        assert _snapshot(a, kind).versions == _snapshot(b, kind).versions


@settings(deadline=None, max_examples=10)
@given(st.randoms(use_true_random=False), st.floats(0.0, 10.0))
def test_replicas_fed_noisy_registrations_stay_within_the_band_of_each_other(
    rng: random.Random, late: float
) -> None:
    """Registered utilization wobbling by up to 3 %: the replicas' weights may differ (each
    holds what it last pushed while the estimates stay inside the hysteresis band; versions
    then differ), but each stays within the band of the same target: apart by at most twice
    the band."""
    settings_ = AdaptiveSettings(min_push_interval=1.0)
    a, b = (_pipeline(_service(settings_=settings_)) for _ in range(2))
    for step in range(120):
        wall = WALL + step * 0.5
        loads = {
            k: ReportedLoad(v.utilization * rng.uniform(0.97, 1.03), v.rps, v.at)
            for k, v in _registered(a, wall, with_rps=True).items()
        }
        for pipe, start in ((a, 0.0), (b, late)):
            pipe.publish(0, {"web": _service(settings_=settings_, loads=loads)})
            pipe.merge()
            if step * 0.5 >= start:
                pipe.apply_loads({}, 1000.0 + step * 0.5, wall)
    first, second = a.weights.weights("web"), b.weights.weights("web")
    assert first is not None
    assert second is not None
    for key, weight in first.items():
        assert abs(weight - second[key]) <= settings_.hysteresis * 2 * second[key], (first, second)
