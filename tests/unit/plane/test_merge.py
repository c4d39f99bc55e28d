"""Merging the sources' sets (`SourceMerge`): first source wins, clients never see a name
twice, changes named exactly, clashes reported once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdscp.model import Endpoint, NameClaims, Service, ServiceUpdate
from xdscp.plane.merge import ClashKind, SourceMerge


def svc(name: str, port: int = 80) -> Service:
    return Service(name, (Endpoint("10.0.0.1", port),))


def test_the_first_source_keeps_a_name_and_the_clash_is_reported_once() -> None:
    """`web` in static and in etcd: static's is served; the clash is said once, not at
    every later merge, and again only after it was resolved and reappeared."""
    merge = SourceMerge(["static", "etcd"])
    merge.publish(0, {"web": svc("web", 1)})
    merge.publish(1, {"web": svc("web", 2), "api": svc("api")})
    result = merge.merge()
    assert merge.merged == {"web": svc("web", 1), "api": svc("api")}
    assert [(c.kind, c.service, c.source, c.kept_by) for c in result.clashes] == [
        (ClashKind.SAME_NAME, "web", "etcd", "static")
    ]
    merge.publish(1, ServiceUpdate({"web": svc("web", 3), "api": svc("api")}, frozenset({"web"})))
    assert merge.merge().clashes == ()
    merge.publish(0, ServiceUpdate({}, frozenset({"web"})))
    result = merge.merge()
    assert merge.merged["web"] == svc("web", 3)  # etcd's, now that static dropped it
    assert result.changed == frozenset({"web"})
    merge.publish(0, ServiceUpdate({"web": svc("web", 1)}, frozenset({"web"})))
    assert [c.source for c in merge.merge().clashes] == ["etcd"]


def test_names_a_client_confuses_are_refused_until_the_holder_goes() -> None:
    """`WEB` after `web` (Envoy's domains ignore case), and `web.svc` beside `web` under
    the suffix `.svc`, are left out while `web` is served; when `web` goes, the first of
    them in name order is merged without anyone publishing again."""
    merge = SourceMerge(["static", "etcd"], domain_suffixes=(".svc",))
    merge.publish(0, {"web": svc("web")})
    merge.merge()
    merge.publish(1, {"WEB": svc("WEB"), "web.svc": svc("web.svc")})
    result = merge.merge()
    assert set(merge.merged) == {"web"}
    assert {(c.kind, c.service, c.kept_by) for c in result.clashes} == {
        (ClashKind.CLIENT_NAME, "WEB", "web"),
        (ClashKind.CLIENT_NAME, "web.svc", "web"),
    }
    assert merge.merge().clashes == ()  # said once
    merge.publish(0, {})
    result = merge.merge()
    assert set(merge.merged) == {"WEB"}  # "WEB" < "web.svc"; web.svc clashes with it too
    assert result.changed is None or {"web", "WEB"} <= result.changed


_NAMES = st.sampled_from(["web", "WEB", "Web", "api", "web.svc", "api.svc", "db"])
_SET = st.dictionaries(_NAMES, st.integers(1, 3), max_size=5)
_STEP = st.tuples(st.integers(0, 2), _SET, st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=12))
def test_merged_set_invariants(steps: list[tuple[int, dict[str, int], bool]]) -> None:
    """Whatever the sources publish, with or without change hints: no client name is served
    twice; a served name is the first owning source's service; a name left out clashes with
    a served one; `changed` names every name whose service changed."""
    merge = SourceMerge(["a", "b", "c"], domain_suffixes=(".svc",))
    published: dict[int, dict[str, Service]] = {}
    for index, spec, hinted in steps:
        services = {name: svc(name, port) for name, port in spec.items()}
        before = dict(merge.merged)
        old = published.get(index, {})
        if hinted and index in published:
            hint = frozenset(
                n for n in old.keys() | services.keys() if old.get(n) != services.get(n)
            )
            merge.publish(index, ServiceUpdate(services, hint))
        else:
            merge.publish(index, services)
        published[index] = services
        result = merge.merge()
        if result.changed is not None:
            differ = {
                n
                for n in before.keys() | merge.merged.keys()
                if before.get(n) != merge.merged.get(n)
            }
            assert differ <= result.changed
        _check(merge, published)


def _check(merge: SourceMerge, published: dict[int, dict[str, Service]]) -> None:
    claims = NameClaims((".svc",))
    seen: dict[str, str] = {}
    for name, service in merge.merged.items():
        owner = min(i for i in published if name in published[i])
        assert service == published[owner][name]
        for client_name in claims.client_names(name):
            assert client_name not in seen, (name, seen[client_name])
            seen[client_name] = name
    for name in {n for services in published.values() for n in services} - merge.merged.keys():
        assert any(c in seen for c in claims.client_names(name)), name
