"""examples/grafana-dashboard.json passes the Grafana linter (`tests.harness.grafana`) and
queries only metric names xdscp's registries expose; every xdscp family is on a panel.
(tests/integration/dashboard/test_grafana_example.py checks the names on a running serve.)"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from tests.harness import grafana
from xdscp.dns import DnsMetrics
from xdscp.plane import ServerConfig, build_plane
from xdscp.sources import RegistryMetrics


def _exposed() -> set[str]:
    """Every name on serve's /metrics (plane, process, etcd registry and DNS)."""
    metrics_registry = CollectorRegistry()
    build_plane(ServerConfig(), metrics_registry=metrics_registry)
    RegistryMetrics(metrics_registry)
    DnsMetrics(metrics_registry)
    return grafana.exposed_names(generate_latest(metrics_registry).decode())


def test_the_dashboard_lints_clean() -> None:
    """Ids, placement, the datasource and instance variables on every query, a legend per
    series, the "down"/"up" mappings."""
    dashboard = grafana.load()
    problems = (
        grafana.layout_problems(dashboard)
        + grafana.variable_problems(dashboard)
        + grafana.legend_problems(dashboard)
        + grafana.mapping_problems(dashboard, "etcd reachable")
        + grafana.mapping_problems(dashboard, "Sources following their backend")
    )
    assert problems == []


def test_every_query_uses_an_exposed_metric_and_every_family_is_shown() -> None:
    """The expressions name only exposed metrics, and each xdscp family is on some panel."""
    used, exposed = grafana.metric_names(grafana.load()), _exposed()
    assert used - exposed == set()
    # `*_created`: switched off by `xdscp serve` (process-wide), not in this test process
    families = {n for n in exposed if n.startswith("xdscp_") and not n.endswith("_created")}
    shown = {grafana.HISTOGRAM.sub("", name) for name in used}
    assert {f for f in families if grafana.HISTOGRAM.sub("", f) not in shown} == set()


def test_the_linter_finds_what_the_old_dashboard_had() -> None:
    """A legend that is the metric name, a query without the instance filter, a panel
    without gridPos and a repeated id are each reported."""
    panel = {
        "id": 1, "title": "ACKs", "datasource": grafana.DATASOURCE,
        "targets": [{"expr": "sum by (type) (rate(xdscp_acks_total[5m]))",
                     "legendFormat": "xdscp_acks_total", "datasource": grafana.DATASOURCE}],
    }  # fmt: skip
    dashboard = {"panels": [panel, {**panel, "title": "again"}], "templating": {"list": []}}
    problems = "\n".join(
        grafana.layout_problems(dashboard)
        + grafana.variable_problems(dashboard)
        + grafana.legend_problems(dashboard)
        + grafana.mapping_problems(dashboard, "ACKs")
    )
    for words in ("unique", "gridPos", "no instance query variable",
                  "selected without the instance filter", "names no series", "lacks ['type']",
                  "value mapping"):  # fmt: skip
        assert words in problems
