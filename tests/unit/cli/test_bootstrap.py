"""`xdscp bootstrap` prints bootstraps a real Envoy accepts and gRPC can read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from xdscp.cli import main
from xdscp.procs import find_binary


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_envoy_bootstrap_points_ads_at_every_replica() -> None:
    """Every --xds address becomes an endpoint of the HTTP/2 xDS cluster used by ADS."""
    args = "bootstrap envoy --node-id n1 --xds 127.0.0.1:18000 --xds [::1]:18001"
    doc = json.loads(_run(*args.split()))
    assert doc["node"] == {"id": "n1", "cluster": "xdscp"}
    cluster = doc["static_resources"]["clusters"][0]
    assert cluster["type"] == "STATIC"
    addresses = [
        e["endpoint"]["address"]["socket_address"]
        for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert addresses == [
        {"address": "127.0.0.1", "port_value": 18000},
        {"address": "::1", "port_value": 18001},
    ]
    options = cluster["typed_extension_protocol_options"]
    assert "http2_protocol_options" in next(iter(options.values()))["explicit_http_config"]
    dynamic = doc["dynamic_resources"]
    assert dynamic["cds_config"]["ads"] == {} == dynamic["lds_config"]["ads"]
    assert (
        dynamic["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"] == cluster["name"]
    )


def test_envoy_bootstrap_speaks_delta_when_asked() -> None:
    """`--delta` switches ADS to incremental xDS (DELTA_GRPC); the default is GRPC."""
    base = ("bootstrap", "envoy", "--node-id", "n", "--xds", "127.0.0.1:18000")
    assert json.loads(_run(*base))["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    delta = json.loads(_run(*base, "--delta"))["dynamic_resources"]["ads_config"]
    assert delta["api_type"] == "DELTA_GRPC"


def test_envoy_bootstrap_reports_load_to_xdscp_unless_told_not_to() -> None:
    """By default Envoy reports its load (LRS) over the xDS cluster; `--no-load-reporting`
    leaves `cluster_manager.load_stats_config` out."""
    base = ("bootstrap", "envoy", "--node-id", "n", "--xds", "127.0.0.1:18000")
    doc = json.loads(_run(*base))
    lrs = doc["cluster_manager"]["load_stats_config"]
    assert (lrs["api_type"], lrs["transport_api_version"]) == ("GRPC", "V3")
    xds = doc["static_resources"]["clusters"][0]["name"]
    assert lrs["grpc_services"] == [{"envoy_grpc": {"cluster_name": xds}}]
    assert "cluster_manager" not in json.loads(_run(*base, "--no-load-reporting"))


def test_envoy_bootstrap_uses_dns_for_named_replicas() -> None:
    """A replica given by name (a compose service) makes the xDS cluster resolve it by DNS."""
    doc = yaml.safe_load(
        _run("bootstrap", "envoy", "--node-id", "n", "--xds", "xdscp-1:18000", "--format", "yaml")
    )
    assert doc["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


@pytest.mark.parametrize("bad", ["nohost", "host:0", "host:99999", ":80", "host:http"])
def test_bad_xds_address_is_a_usage_error(bad: str) -> None:
    """A malformed --xds value is refused with a message naming the option."""
    result = CliRunner().invoke(main, ["bootstrap", "envoy", "--node-id", "n", "--xds", bad])
    assert result.exit_code == 2
    assert "--xds" in result.output


def test_grpc_bootstrap_has_channel_creds() -> None:
    """gRPC needs channel_creds and the xds_v3 feature for every server."""
    doc = json.loads(_run("bootstrap", "grpc", "--node-id", "app-1", "--xds", "127.0.0.1:18000"))
    assert doc["xds_servers"] == [
        {
            "server_uri": "127.0.0.1:18000",
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }
    ]
    assert doc["node"]["id"] == "app-1"


@pytest.mark.envoy
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_real_envoy_validates_the_bootstrap(tmp_path: Path, fmt: str) -> None:
    """`envoy --mode validate` accepts the printed bootstrap, in both formats."""
    path = tmp_path / f"bootstrap.{fmt}"
    replicas = "--xds 127.0.0.1:18000 --xds xdscp-2:18000"
    args = f"bootstrap envoy --node-id n1 {replicas} --admin-port 0 --format {fmt}"
    path.write_text(_run(*args.split()))
    done = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"configuration '{path}' OK" in done.stdout
