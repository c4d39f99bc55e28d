"""examples/grafana-dashboard.json queries only metric names xdscp really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from xdscp.dns import DnsMetrics
from xdscp.plane import ControlPlane
from xdscp.sources import RegistryMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "examples" / "grafana-dashboard.json"
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def _exposed() -> set[str]:
    """Every metric family name on serve's /metrics (plane, etcd registry and DNS)."""
    registry = CollectorRegistry()
    ControlPlane([], registry=registry)
    RegistryMetrics(registry)
    DnsMetrics(registry)
    text = generate_latest(registry).decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def test_every_query_uses_an_exposed_metric() -> None:
    """Each panel's expressions name only exposed families (histogram series by their
    family), and every family but the `_created` timestamps appears in some panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {
        HISTOGRAM_SERIES.sub("", name)
        for panel in panels
        for target in panel["targets"]
        for name in re.findall(r"xdscp_\w+", target["expr"])
    }
    exposed = _exposed()
    assert used - exposed == set()
    assert {name for name in exposed if not name.endswith("_created")} - used == set()
