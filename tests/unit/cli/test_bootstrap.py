"""`xdscp bootstrap` prints bootstraps a real Envoy accepts and gRPC can read."""

from __future__ import annotations

import json
import subprocess
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cli import main
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap, grpc_bootstrap
from xdscp.errors import ConfigError
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


@pytest.mark.parametrize(
    "twice",
    [("127.0.0.1:18000", "127.0.0.1:18000"), ("[::1]:1", "[0::1]:1"), ("Xds:1", "xds:1")],
)
@pytest.mark.parametrize("client", ["envoy", "grpc"])
def test_a_server_given_twice_is_a_usage_error(client: str, twice: tuple[str, str]) -> None:
    """The same replica twice (an address however written, a name in any case) is refused,
    naming it: gRPC would fall back to the server it is leaving."""
    args = ["bootstrap", client, "--node-id", "n", "--xds", twice[0], "--xds", twice[1]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--xds" in result.output
    assert "given twice" in result.output


def test_grpc_bootstrap_lists_the_servers_primary_first() -> None:
    """Several --xds are gRPC's `xds_servers` in the order given (gRFC A71: the first is the
    primary), each complete: credentials and features per server, none per authority."""
    args = "bootstrap grpc --node-id a --xds b.test:1 --xds 10.0.0.1:2 --xds [::1]:3"
    doc = json.loads(_run(*args.split()))
    assert [s["server_uri"] for s in doc["xds_servers"]] == ["b.test:1", "10.0.0.1:2", "[::1]:3"]
    for server in doc["xds_servers"]:
        assert server["channel_creds"] == [{"type": "insecure"}]
        assert server["server_features"] == ["xds_v3"]
    assert "authorities" not in doc


def test_envoy_bootstrap_has_one_grpc_service_over_every_replica() -> None:
    """Envoy gets one ADS `grpc_services` entry (a second is an experimental failover) whose
    cluster balances round robin over every replica, in the order given; a broken stream is
    retried from 0.1 s (on the next replica), not Envoy's default 0.5 s."""
    args = "bootstrap envoy --node-id n --xds b.test:1 --xds a.test:2"
    doc = json.loads(_run(*args.split()))
    (service,) = doc["dynamic_resources"]["ads_config"]["grpc_services"]
    back_off = service["envoy_grpc"]["retry_policy"]["retry_back_off"]
    assert back_off == {"base_interval": "0.100s", "max_interval": "30.000s"}
    cluster = doc["static_resources"]["clusters"][0]
    assert cluster.get("lb_policy", "ROUND_ROBIN") == "ROUND_ROBIN"
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints] == [
        "b.test",
        "a.test",
    ]


_hosts = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
)
_servers = st.lists(st.builds(XdsServer, _hosts, st.integers(1, 65535)), min_size=1, max_size=6)


@given(_servers)
def test_every_distinct_server_kept_in_order_a_repeat_refused(servers: list[XdsServer]) -> None:
    """Property: distinct servers are the bootstraps' servers in the order given; a list
    naming one server twice is refused by both builders."""
    keys = [(ip_address(s.host) if s.is_ip else s.host, s.port) for s in servers]
    options = EnvoyBootstrapOptions(node_id="n", servers=tuple(servers))
    if len(set(keys)) < len(keys):
        with pytest.raises(ConfigError, match="given twice"):
            grpc_bootstrap("n", tuple(servers))
        with pytest.raises(ConfigError, match="given twice"):
            envoy_bootstrap(options)
        return
    uris = [s["server_uri"] for s in grpc_bootstrap("n", tuple(servers))["xds_servers"]]
    assert uris == [str(s) for s in servers]
    cluster = envoy_bootstrap(options)["static_resources"]["clusters"][0]
    found = [
        e["endpoint"]["address"]["socket_address"]
        for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert found == [{"address": s.host, "port_value": s.port} for s in servers]


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
