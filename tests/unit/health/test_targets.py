"""What is checked, and what verdicts do to the served services (never emptying one)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xdscp.health import HealthOverlay, Verdict, targets_of, with_verdicts
from xdscp.model import BalancingPolicy, Endpoint, Health, HealthCheck, Service

CHECKED = BalancingPolicy(
    health_check=HealthCheck(kind="grpc", control_plane=True), upstream_protocol="http2"
)
ENVOY_ONLY = BalancingPolicy(health_check=HealthCheck(kind="grpc"), upstream_protocol="http2")


def service(name: str, n: int, policy: BalancingPolicy = CHECKED, **health: Health) -> Service:
    endpoints = tuple(
        Endpoint(f"10.0.0.{i + 1}", 80, health=health.get(f"e{i}", Health.HEALTHY))
        for i in range(n)
    )
    return Service(name, endpoints, policy)


def served(overlay: HealthOverlay, name: str) -> dict[str, str]:
    return {e.key: str(e.health) for e in overlay.services[name].endpoints}


def test_only_services_asking_for_control_plane_checks_are_targets() -> None:
    """Envoy-only checks and services without a check are not xdscp's to check."""
    services = {
        "a": service("a", 2),
        "b": service("b", 2, ENVOY_ONLY),
        "c": service("c", 1, BalancingPolicy()),
    }
    keys = sorted(t.key for t in targets_of(services))
    assert keys == [("a", "10.0.0.1:80"), ("a", "10.0.0.2:80")]
    assert list(targets_of(services, ["b", "c", "gone"])) == []


def test_a_failing_endpoint_is_served_unhealthy_the_others_untouched() -> None:
    """One of three fails: it alone is UNHEALTHY; nothing is removed."""
    merged = {"web": service("web", 3)}
    overlay = HealthOverlay()
    overlay.update(merged, None)
    assert overlay.set_verdict("web", "10.0.0.2:80", Verdict.UNHEALTHY)
    assert served(overlay, "web") == {
        "10.0.0.1:80": "healthy", "10.0.0.2:80": "unhealthy", "10.0.0.3:80": "healthy",
    }  # fmt: skip
    assert overlay.services["web"] is not merged["web"]
    assert overlay.set_verdict("web", "10.0.0.2:80", Verdict.HEALTHY)
    assert overlay.services["web"] is merged["web"]


def test_every_endpoint_failing_fails_open() -> None:
    """A service is never served without the healthy endpoints it had: all failing, none
    is marked, and the service is reported as failed open."""
    merged = {"web": service("web", 2)}
    overlay = HealthOverlay()
    overlay.update(merged, None)
    overlay.set_verdict("web", "10.0.0.1:80", Verdict.UNHEALTHY)
    assert overlay.set_verdict("web", "10.0.0.2:80", Verdict.UNHEALTHY)
    assert set(served(overlay, "web").values()) == {"healthy"}
    assert overlay.failed_open == {"web"}
    overlay.set_verdict("web", "10.0.0.1:80", Verdict.HEALTHY)
    assert served(overlay, "web")["10.0.0.2:80"] == "unhealthy"
    assert overlay.failed_open == set()


def test_registered_health_other_than_healthy_is_never_overridden() -> None:
    """A draining endpoint stays draining whatever its checks say."""
    merged = {"web": service("web", 3, e0=Health.DRAINING)}
    overlay = HealthOverlay()
    overlay.update(merged, None)
    overlay.set_verdict("web", "10.0.0.1:80", Verdict.UNHEALTHY)
    overlay.set_verdict("web", "10.0.0.2:80", Verdict.UNHEALTHY)
    assert served(overlay, "web") == {
        "10.0.0.1:80": "draining", "10.0.0.2:80": "unhealthy", "10.0.0.3:80": "healthy",
    }  # fmt: skip


def test_verdicts_follow_the_merged_set_and_the_policy() -> None:
    """A verdict applies while the service asks for control-plane checks; it is re-applied
    to the service's new form, and dropped with the service."""
    merged = {"web": service("web", 3)}
    overlay = HealthOverlay()
    overlay.update(merged, None)
    overlay.set_verdict("web", "10.0.0.3:80", Verdict.UNHEALTHY)
    merged["web"] = service("web", 4)
    overlay.update(merged, {"web"})
    assert served(overlay, "web")["10.0.0.3:80"] == "unhealthy"
    merged["web"] = service("web", 4, ENVOY_ONLY)
    overlay.update(merged, {"web"})
    assert set(served(overlay, "web").values()) == {"healthy"}
    del merged["web"]
    overlay.update(merged, {"web"})
    assert "web" not in overlay.services


verdict = st.sampled_from([Verdict.HEALTHY, Verdict.UNHEALTHY, Verdict.UNKNOWN])
healths = st.lists(st.sampled_from(list(Health)), min_size=1, max_size=8)


@given(healths, st.lists(verdict, min_size=8, max_size=8))
def test_overriding_never_removes_and_never_empties(
    registered: list[Health], verdicts: list[Verdict]
) -> None:
    """Whatever the verdicts: the same endpoints, only HEALTHY -> UNHEALTHY changes, a
    service that had a healthy endpoint keeps one."""
    base = service("s", len(registered), **{f"e{i}": h for i, h in enumerate(registered)})
    judged = {e.key: verdicts[i] for i, e in enumerate(base.endpoints)}
    result, failed_open = with_verdicts(base, judged)
    assert [e.key for e in result.endpoints] == [e.key for e in base.endpoints]
    for before, after in zip(base.endpoints, result.endpoints, strict=True):
        assert after.health is before.health or (
            (before.health, after.health) == (Health.HEALTHY, Health.UNHEALTHY)
            and judged[before.key] is Verdict.UNHEALTHY
        )
    if any(e.health is Health.HEALTHY for e in base.endpoints):
        assert any(e.health is Health.HEALTHY for e in result.endpoints)
    serving = [judged[e.key] for e in base.endpoints if e.health is Health.HEALTHY]
    assert failed_open == (bool(serving) and all(v is Verdict.UNHEALTHY for v in serving))
