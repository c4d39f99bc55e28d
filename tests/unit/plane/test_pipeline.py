"""The plane's `Pipeline`, driven with no event loop and no port: publications and health
verdicts in, per client kind the next snapshot out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.cache import Snapshot
from xdscp.health import Verdict
from xdscp.model import (
    BalancingPolicy,
    ClientKind,
    Endpoint,
    HealthCheck,
    Service,
    ServiceSet,
    ServiceUpdate,
)
from xdscp.plane.merge import ClashKind
from xdscp.plane.pipeline import Pipeline
from xdscp.translate import translator_for

CHECKED = BalancingPolicy(health_check=HealthCheck(kind="tcp", control_plane=True))


def svc(name: str, port: int = 80) -> Service:
    return Service(name, (Endpoint("10.0.0.1", port),))


def pipeline(*sources: str, kinds: tuple[ClientKind, ...] = tuple(ClientKind)) -> Pipeline:
    translators = {kind: translator_for(kind) for kind in kinds}
    return Pipeline(sources or ("static",), translators)


def snapshots(pipe: Pipeline, last: dict[ClientKind, Snapshot] | None = None) -> None:
    """Merge, then build each kind's next snapshot, kept in `last` when there is one."""
    pipe.merge()
    for kind in pipe.translators:
        build(pipe, kind, last)


def build(pipe: Pipeline, kind: ClientKind, last: dict[ClientKind, Snapshot] | None) -> None:
    built = pipe.build(kind)
    if built is not None and last is not None:
        last[kind] = built.result.snapshot


def contents(snapshot: Snapshot | None) -> dict[str, dict[str, bytes]]:
    assert snapshot is not None
    return {
        str(type_url): {name: r.any_bytes for name, r in found.items()}
        for type_url, found in snapshot.resources.items()
    }


def test_envoy_is_built_first_and_the_other_kinds_a_turn_later() -> None:
    """The turns: Envoy's alone, then every other kind; a kind not served has no turn."""
    assert pipeline().turns == ((ClientKind.ENVOY,), (ClientKind.GRPC,))
    assert pipeline(kinds=(ClientKind.ENVOY,)).turns == ((ClientKind.ENVOY,),)
    assert pipeline(kinds=(ClientKind.GRPC,)).turns == ((ClientKind.GRPC,),)


def test_each_kind_builds_everything_first_then_only_what_changed() -> None:
    """The first build of each kind covers every service; later ones only the names that
    changed, and a kind already up to date has nothing to build."""
    pipe = pipeline()
    pipe.publish(0, {"web": svc("web"), "api": svc("api")})
    assert pipe.unmerged
    assert pipe.merge().changed is None
    assert not pipe.unmerged
    first = pipe.build(ClientKind.ENVOY)
    assert first is not None
    assert first.changed is None
    assert set(
        contents(first.result.snapshot)["type.googleapis.com/envoy.config.cluster.v3.Cluster"]
    ) == {"web", "api"}
    assert pipe.build(ClientKind.ENVOY) is None
    pipe.publish(0, ServiceUpdate({"web": svc("web", 81), "api": svc("api")}, frozenset({"web"})))
    assert pipe.merge().changed == frozenset({"web"})
    again = pipe.build(ClientKind.ENVOY)
    assert again is not None
    assert again.changed == 1
    grpc = pipe.build(ClientKind.GRPC)
    assert grpc is not None
    assert grpc.changed is None
    assert pipe.build(ClientKind.GRPC) is None
    assert dict(pipe.merged) == {"web": svc("web", 81), "api": svc("api")}


def test_changes_accumulate_for_a_kind_that_has_not_built_yet() -> None:
    """Two merges before gRPC builds: its build covers the changes of both."""
    pipe = pipeline()
    pipe.publish(0, {"web": svc("web"), "api": svc("api")})
    snapshots(pipe)
    for name, port in (("web", 81), ("api", 82)):
        current = {"web": svc("web"), "api": svc("api"), name: svc(name, port)}
        pipe.publish(0, ServiceUpdate(current, frozenset({name})))
        pipe.merge()
        built = pipe.build(ClientKind.ENVOY)
        assert built is not None
        assert built.changed == 1
    grpc = pipe.build(ClientKind.GRPC)
    assert grpc is not None
    assert grpc.changed == 2


def test_a_clash_is_reported_once_and_the_first_source_keeps_the_name() -> None:
    """The name both sources publish is kept by the first; the merge reports the clash."""
    pipe = pipeline("static", "etcd")
    pipe.publish(0, {"web": svc("web", 1)})
    pipe.publish(1, {"web": svc("web", 2)})
    clashes = pipe.merge().clashes
    assert [(c.kind, c.service, c.source, c.kept_by) for c in clashes] == [
        (ClashKind.SAME_NAME, "web", "etcd", "static")
    ]
    assert pipe.source_of("web") == "static"
    pipe.publish(1, {"web": svc("web", 2)})
    assert pipe.merge().clashes == ()


def test_a_verdict_re_serves_just_its_service_without_a_publication() -> None:
    """An endpoint judged UNHEALTHY is served so by every kind; only its service is built
    again; a verdict that changes nothing owes nothing."""
    endpoints = (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80))
    pipe = pipeline()
    pipe.publish(0, {"web": Service("web", endpoints, CHECKED), "api": svc("api")})
    snapshots(pipe)
    changed = pipe.apply_verdicts([(("web", "10.0.0.2:80"), Verdict.UNHEALTHY)])
    assert changed == frozenset({"web"})
    served = {e.key: str(e.health) for e in pipe.services["web"].endpoints}
    assert served == {"10.0.0.1:80": "healthy", "10.0.0.2:80": "unhealthy"}
    assert pipe.merged["web"].endpoints == endpoints  # the merged set is untouched
    for kind in ClientKind:
        built = pipe.build(kind)
        assert built is not None
        assert built.changed == 1
    assert pipe.apply_verdicts([(("web", "10.0.0.2:80"), Verdict.UNHEALTHY)]) == frozenset()
    assert pipe.build(ClientKind.ENVOY) is None


_NAMES = st.sampled_from(["web", "api", "db", "cache"])
_SETS = st.dictionaries(_NAMES, st.integers(1, 3), max_size=4)
_PUBLICATIONS = st.lists(st.tuples(st.integers(0, 2), _SETS), min_size=1, max_size=8)


def _services(ports: dict[str, int]) -> ServiceSet:
    return {name: svc(name, port) for name, port in ports.items()}


@settings(max_examples=80, deadline=None)
@given(publications=_PUBLICATIONS, merge_after=st.lists(st.booleans(), min_size=8, max_size=8))
def test_any_order_of_merges_gives_the_snapshot_of_one_batch(
    publications: list[tuple[int, dict[str, int]]], merge_after: list[bool]
) -> None:
    """Merging and building after any of the publications, or only once after them all,
    ends in the same snapshot for every kind: what each source published last."""
    stepwise, batch = pipeline("a", "b", "c"), pipeline("a", "b", "c")
    steps: dict[ClientKind, Snapshot] = {}
    latest: dict[int, dict[str, int]] = {}
    for (position, ports), merge in zip(publications, merge_after, strict=False):
        stepwise.publish(position, _services(ports))
        batch.publish(position, _services(ports))
        latest[position] = ports
        if merge:
            snapshots(stepwise, steps)
    snapshots(stepwise, steps)
    once: dict[ClientKind, Snapshot] = {}
    snapshots(batch, once)
    for kind in ClientKind:
        assert contents(steps[kind]) == contents(once[kind])
    expected: dict[str, int] = {}
    for position in sorted(latest, reverse=True):  # the first source wins
        expected.update(latest[position])
    assert dict(batch.merged) == _services(expected)


@settings(max_examples=60, deadline=None)
@given(publications=_PUBLICATIONS, grpc_every=st.integers(1, 3))
def test_every_kind_is_told_every_change_it_missed(
    publications: list[tuple[int, dict[str, int]]], grpc_every: int
) -> None:
    """Whatever the sequence, a kind that builds late still ends with the snapshot built
    from scratch for the same services."""
    pipe = pipeline("a", "b", "c")
    last: dict[ClientKind, Snapshot] = {}
    for round_, (position, ports) in enumerate(publications):
        pipe.publish(position, _services(ports))
        pipe.merge()
        build(pipe, ClientKind.ENVOY, last)
        if round_ % grpc_every == 0:
            build(pipe, ClientKind.GRPC, last)
    for kind in ClientKind:
        build(pipe, kind, last)
        fresh = translator_for(kind).translate(dict(pipe.services)).snapshot
        assert contents(last[kind]) == contents(fresh)
