"""Each source's state (ok, starting, degraded) with the time it began: the gauge, the
callback on a change, and `since` kept while the state holds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from xdscp.plane.source_health import SourceMonitor


class Source:
    """A source whose readiness and error the test sets."""

    def __init__(self, name: str) -> None:
        self.name, self.ready, self.last_error = name, False, None  # type: str, bool, str | None


def test_states_their_start_and_the_gauge() -> None:
    """starting → ok → degraded (since the clock then; a new error text keeps `since`) → ok;
    each change calls back once and sets `xdscp_source_up`."""
    registry, now, changes = CollectorRegistry(), [100.0], []
    etcd = Source("etcd")
    monitor = SourceMonitor([etcd], registry, lambda: changes.append(1), clock=lambda: now[0])

    def up() -> float | None:
        return registry.get_sample_value("xdscp_source_up", {"source": "etcd"})

    assert [(s.state, s.since) for s in monitor.check()] == [("starting", 100.0)]
    assert up() == 0
    etcd.ready, now[0] = True, 105.0
    assert [(s.state, s.since) for s in monitor.check()] == [("ok", 105.0)]
    assert up() == 1
    etcd.last_error, now[0] = "no etcd endpoint reachable", 110.0
    (state,) = monitor.check()
    assert (state.state, state.since, state.error) == ("degraded", 110.0, etcd.last_error)
    assert state.as_json()["since"] == "1970-01-01T00:01:50+00:00"
    assert up() == 0
    etcd.last_error, now[0] = "connection refused", 115.0
    assert [(s.state, s.since, s.error) for s in monitor.check()] == [
        ("degraded", 110.0, "connection refused")
    ]
    now[0] = 120.0
    monitor.check()  # nothing changed: no callback
    etcd.last_error = None
    assert [(s.state, s.since) for s in monitor.check()] == [("ok", 120.0)]
    assert up() == 1
    assert len(changes) == 5
