"""The rebuild schedule (`RebuildSchedule`): one rebuild per burst of publications, Envoy
translated first and the other kinds a loop turn later, each kind given exactly the names
that changed since it last translated."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.model import ClientKind, Endpoint, Service, ServiceUpdate
from xdscp.plane.rebuild import RebuildSchedule, TranslateStep
from xdscp.sources import ClashKind, SourceMerge


def svc(name: str, port: int = 80) -> Service:
    return Service(name, (Endpoint("10.0.0.1", port),))


def schedule(*sources: str) -> RebuildSchedule:
    return RebuildSchedule(SourceMerge(sources or ("static",)))


def test_a_burst_of_publications_schedules_one_rebuild() -> None:
    """Only the first publication since the last rebuild asks the shell for one."""
    plan = schedule("static", "etcd")
    assert plan.publish(0, {"web": svc("web")}) is True
    assert plan.publish(1, {"api": svc("api")}) is False
    assert plan.publish(0, {"web": svc("web", 81)}) is False
    plan.rebuild()
    assert plan.publish(1, {}) is True


def test_envoy_is_translated_first_and_the_other_kinds_a_turn_later() -> None:
    """The plan's first turn is Envoy's alone; gRPC clients follow in the next turn."""
    plan = schedule()
    plan.publish(0, {"web": svc("web")})
    assert plan.rebuild().turns == ((ClientKind.ENVOY,), (ClientKind.GRPC,))
    only_envoy = RebuildSchedule(SourceMerge(["static"]), (ClientKind.ENVOY,))
    only_envoy.publish(0, {"web": svc("web")})
    assert only_envoy.rebuild().turns == ((ClientKind.ENVOY,),)
    only_grpc = RebuildSchedule(SourceMerge(["static"]), (ClientKind.GRPC,))
    only_grpc.publish(0, {"web": svc("web")})
    assert only_grpc.rebuild().turns == ((ClientKind.GRPC,),)


def test_each_kind_translates_everything_first_then_only_what_changed() -> None:
    """The first step of each kind covers every service; later ones name the changes, and
    a kind already up to date has nothing to do."""
    plan = schedule()
    plan.publish(0, {"web": svc("web"), "api": svc("api")})
    assert plan.rebuild().changed is None
    assert plan.take(ClientKind.ENVOY) == TranslateStep(ClientKind.ENVOY, None)
    assert plan.take(ClientKind.ENVOY) is None
    plan.publish(0, ServiceUpdate({"web": svc("web", 81), "api": svc("api")}, frozenset({"web"})))
    assert plan.rebuild().changed == frozenset({"web"})
    assert plan.take(ClientKind.ENVOY) == TranslateStep(ClientKind.ENVOY, frozenset({"web"}))
    assert plan.take(ClientKind.GRPC) == TranslateStep(ClientKind.GRPC, None)  # its first
    assert plan.take(ClientKind.GRPC) is None
    assert dict(plan.merged) == {"web": svc("web", 81), "api": svc("api")}


def test_changes_accumulate_for_a_kind_that_has_not_translated_yet() -> None:
    """Two rebuilds before gRPC's turn: its step names the changes of both."""
    plan = schedule()
    plan.publish(0, {"web": svc("web"), "api": svc("api")})
    plan.rebuild()
    plan.take(ClientKind.ENVOY)
    plan.take(ClientKind.GRPC)
    for name, port in (("web", 81), ("api", 82)):
        current = {"web": svc("web"), "api": svc("api"), name: svc(name, port)}
        plan.publish(0, ServiceUpdate(current, frozenset({name})))
        plan.rebuild()
        assert plan.take(ClientKind.ENVOY) == TranslateStep(ClientKind.ENVOY, frozenset({name}))
    step = plan.take(ClientKind.GRPC)
    assert step == TranslateStep(ClientKind.GRPC, frozenset({"web", "api"}))


def test_a_clash_is_in_the_plan_once() -> None:
    """The name both sources publish is kept by the first; the plan reports the clash."""
    plan = schedule("static", "etcd")
    plan.publish(0, {"web": svc("web", 1)})
    plan.publish(1, {"web": svc("web", 2)})
    clashes = plan.rebuild().clashes
    assert [(c.kind, c.service, c.source, c.kept_by) for c in clashes] == [
        (ClashKind.SAME_NAME, "web", "etcd", "static")
    ]
    plan.publish(1, {"web": svc("web", 2)})
    assert plan.rebuild().clashes == ()


_UPDATES = st.lists(
    st.dictionaries(st.sampled_from(["web", "api", "db"]), st.integers(1, 3), max_size=3),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(updates=_UPDATES, grpc_every=st.integers(1, 3))
def test_every_kind_is_told_every_change_it_missed(
    updates: list[dict[str, int]], grpc_every: int
) -> None:
    """Whatever the sequence, the names a kind is given since its last step cover every
    service whose merged value differs from what that kind last translated."""
    plan = schedule()
    seen: dict[ClientKind, dict[str, Service]] = {kind: {} for kind in ClientKind}
    for round_, ports in enumerate(updates):
        plan.publish(0, {name: svc(name, port) for name, port in ports.items()})
        plan.rebuild()
        kinds = [ClientKind.ENVOY] + ([ClientKind.GRPC] if round_ % grpc_every == 0 else [])
        for kind in kinds:
            step = plan.take(kind)
            differs = {
                name
                for name in seen[kind].keys() | plan.merged.keys()
                if seen[kind].get(name) != plan.merged.get(name)
            }
            if step is None:
                assert not differs
                continue
            assert step.names is None or differs <= step.names
            seen[kind] = dict(plan.merged)


def test_invalidated_names_are_translated_by_every_kind_without_a_merge() -> None:
    """A health verdict re-serves names nobody published: each kind translates just those,
    in the usual turns, and a kind still owing everything keeps owing everything."""
    plan = schedule()
    plan.publish(0, {"web": svc("web"), "api": svc("api")})
    plan.rebuild()
    assert plan.take(ClientKind.ENVOY) == TranslateStep(ClientKind.ENVOY, None)
    again = plan.invalidate(frozenset({"web"}))
    assert again.changed == frozenset({"web"})
    assert again.clashes == ()
    assert again.turns == ((ClientKind.ENVOY,), (ClientKind.GRPC,))
    assert plan.take(ClientKind.ENVOY) == TranslateStep(ClientKind.ENVOY, frozenset({"web"}))
    assert plan.take(ClientKind.ENVOY) is None
    assert plan.take(ClientKind.GRPC) == TranslateStep(ClientKind.GRPC, None)
