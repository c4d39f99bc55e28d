"""deploy/quickstart: the compose file, the Prometheus config and Grafana's provisioning agree
with each other and with what `xdscp serve` exposes (the running stack: tests/quickstart)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.harness.paths import ROOT

QUICKSTART = ROOT / "deploy" / "quickstart"
COMPOSE = QUICKSTART / "docker-compose.yml"
EXAMPLE_DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
OBSERVABILITY = {"prometheus", "grafana"}
# `${NAME-default}` / `${NAME:-default}`, as compose interpolates them with NAME unset.
VARIABLE = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def _defaults(text: str) -> str:
    return VARIABLE.sub(lambda m: m.group(2), text)


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (QUICKSTART / source).resolve()
    return mounts


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_every_port_is_published_on_loopback_only() -> None:
    """Each published port binds 127.0.0.1, with its host port overridable (TRY_*_PORT)."""
    published = 0
    for name, service in _services().items():
        assert "network_mode" not in service, name
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\$\{TRY_\w+_PORT-\d+\}:\d+", port), (name, port)
            published += 1
    assert published == 6  # etcd, serve, Envoy (listener, admin), Prometheus, Grafana


def test_core_services_run_the_runtime_image_and_the_rest_sit_behind_a_profile() -> None:
    """etcd, serve, Envoy and the backends run the xdscp image (built once, by the etcd
    service, from the Dockerfile's runtime target); Prometheus and Grafana only with the
    `observability` profile, their images overridable."""
    services = _services()
    assert {"etcd", "xdscp", "envoy", "backend-a", "backend-b"} | OBSERVABILITY == set(services)
    for name, service in services.items():
        if name in OBSERVABILITY:
            assert service["profiles"] == ["observability"], name
            assert re.fullmatch(r"\$\{[A-Z]+_IMAGE:-[\w./-]+:v?[\d.]+\}", service["image"])
        else:
            assert "profiles" not in service, name
            assert service["image"] == "${XDSCP_IMAGE:-xdscp:local}", name
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert list(built) == ["etcd"]
    assert built["etcd"]["target"] == "runtime"
    assert (QUICKSTART / built["etcd"]["context"]).resolve() == ROOT


def test_envoy_and_backends_point_at_the_stack() -> None:
    """Envoy's bootstrap names serve's xDS port; the backends' entry script is mounted."""
    services = _services()
    xds_port = _flag(services["xdscp"]["command"], "--xds").rpartition(":")[2]
    assert f"--xds xdscp:{xds_port}" in services["envoy"]["command"][0]
    for name in ("backend-a", "backend-b"):
        ((target, script),) = _mounts(services[name]).items()
        assert services[name]["entrypoint"] == [target]
        assert script.is_file()
        assert script.stat().st_mode & 0o111, script


def test_prometheus_scrapes_serve_metrics() -> None:
    """The one scrape target is the xdscp service's admin port at /metrics."""
    services = _services()
    admin_port = _flag(services["xdscp"]["command"], "--admin").rpartition(":")[2]
    config_file = _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"]
    (job,) = _yaml(config_file)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": [f"xdscp:{admin_port}"]}]


def test_promtool_accepts_the_prometheus_config() -> None:
    """`promtool check config` (Debian's prometheus package) finds the config valid."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    config_file = _mounts(_services()["prometheus"])["/etc/prometheus/prometheus.yml"]
    done = subprocess.run(
        [promtool, "check", "config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_datasource_is_the_stack_prometheus() -> None:
    """Grafana's provisioned default data source is the prometheus service's port."""
    services = _services()
    mounts = _mounts(services["grafana"])
    directory = mounts["/etc/grafana/provisioning/datasources"]
    files = sorted(directory.glob("*.yaml"))
    assert files, directory
    (source,) = [ds for f in files for ds in _yaml(f)["datasources"]]
    container_port = _defaults(services["prometheus"]["ports"][0]).rpartition(":")[2]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{container_port}"
    assert source["isDefault"] is True


def test_grafana_dashboards_provider_reads_the_mounted_example() -> None:
    """The file provider's path is where the example dashboard is mounted, that mount is
    examples/grafana-dashboard.json, and Grafana's home dashboard is that file."""
    grafana = _services()["grafana"]
    mounts = _mounts(grafana)
    files = sorted(mounts["/etc/grafana/provisioning/dashboards"].glob("*.yaml"))
    assert files
    (provider,) = [p for f in files for p in _yaml(f)["providers"]]
    (target,) = [t for t, source in mounts.items() if source == EXAMPLE_DASHBOARD]
    assert provider["type"] == "file"
    assert PurePosixPath(target).parent == PurePosixPath(provider["options"]["path"])
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == target
    assert "uid" in json.loads(EXAMPLE_DASHBOARD.read_text())


def test_the_example_dashboard_uses_the_provisioned_prometheus() -> None:
    """Each panel's data source is the provisioned one (by uid) or a data source variable
    of type prometheus, which Grafana resolves to the default: the provisioned one."""
    dashboard = json.loads(EXAMPLE_DASHBOARD.read_text())
    (directory,) = [d for t, d in _mounts(_services()["grafana"]).items() if "datasources" in t]
    uids = {ds["uid"] for f in directory.glob("*.yaml") for ds in _yaml(f)["datasources"]}
    variables = {
        f"${{{v['name']}}}"
        for v in dashboard.get("templating", {}).get("list", [])
        if v["type"] == "datasource" and v["query"] == "prometheus"
    }
    panels = dashboard["panels"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] in uids | variables, panel["title"]


def test_every_bind_mount_exists() -> None:
    """Every file or directory a service mounts from the checkout is there."""
    for name, service in _services().items():
        for target, source in _mounts(service).items():
            assert source.exists(), (name, target, source)


def test_docker_compose_validates_the_file_with_its_profile() -> None:
    """`docker-compose config` accepts the file, the observability profile included."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make e2e-compose installs it)")
    done = subprocess.run(
        [compose, "-f", str(COMPOSE), "--profile", "observability", "config"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(yaml.safe_load(done.stdout)["services"]) >= OBSERVABILITY
