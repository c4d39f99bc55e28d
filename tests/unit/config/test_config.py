"""`xdscp serve --config`: the file's schema, its errors (line and field), environment
overrides, the example file and the live static services (precedence: test_precedence.py)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from tests.harness.files import WEB_CONFIG, rewrite, write_config
from tests.harness.paths import ROOT
from xdscp.config import SCHEMA, ConfigServicesSource, load_config
from xdscp.config.options import LoadReporting
from xdscp.errors import ConfigError, ConfigFieldError
from xdscp.model import LbPolicy, ServiceSet
from xdscp.sources.static import load_services
from xdscp.testing import wait_for

EXAMPLE = ROOT / "examples" / "xdscp.yaml"

# (file text, line, field, message): every message is checked exactly.
BAD_FILES = [
    (WEB_CONFIG % 0, 9, "sources.static.services.web.endpoints[1].weight",
     "must be in [1, 4294967295], got 0"),
    (WEB_CONFIG % "'3'", 9, "sources.static.services.web.endpoints[1].weight",
     "must be an integer in [1, 4294967295], got '3'"),
    ("xds:\n  adress: 127.0.0.1:1\n", 2, "xds", "unknown field 'adress', did you mean 'address'?"),
    ("sourcs: {}\n", 1, "", "unknown field 'sourcs', did you mean 'sources'?"),
    ("admin: {zzz: 1}\n", 1, "admin", "unknown field 'zzz'; allowed: address"),
    ("xds:\n  address: localhost\n", 2, "xds.address", "expected HOST:PORT, got 'localhost'"),
    ("xds: {group_by: 'metadata:'}\n", 1, "xds.group_by",
     "node grouping must be kind, cluster, id or metadata:KEY, got 'metadata:'"),
    ("listener:\n  address: localhost\n", 2, "listener.address",
     "must be an IPv4 or IPv6 literal, got 'localhost'"),
    ("listener:\n  port: 0\n", 2, "listener.port", "must be in [1, 65535], got 0"),
    ("listener: {domain_suffixes: .svc}\n", 1, "listener.domain_suffixes",
     "must be a list, got a string"),
    ("listener:\n  default_service: 'a b'\n", 2, "listener.default_service",
     "must be 1-202 characters of letters, digits, '.', '_', '-', starting and ending with a "
     "letter or digit, got 'a b'"),
    ("sources:\n  static:\n    services:\n      web:\n        endpoints:\n"
     "          - {address: 10.0.0.1}\n", 6,
     "sources.static.services.web.endpoints[0].port", "is required"),
    ("sources:\n  static:\n    services:\n      web:\n        endpoints:\n"
     "          - {address: web.local, port: 80}\n", 6,
     "sources.static.services.web.endpoints[0].address",
     "must be an IPv4 or IPv6 literal, got 'web.local'"),
    ("sources:\n  static:\n    services:\n      web:\n        endpoints:\n"
     "          - address: 10.0.0.1\n            port: 80\n            locality: {zon: a}\n", 8,
     "sources.static.services.web.endpoints[0].locality",
     "unknown field 'zon', did you mean 'zone'?"),
    ("sources:\n  static:\n    services:\n      web:\n        endpoints:\n"
     "          - {address: 10.0.0.1, port: 80, health: sick}\n", 6,
     "sources.static.services.web.endpoints[0].health",
     "must be one of healthy, unhealthy, degraded, draining, got 'sick'"),
    ("sources:\n  static:\n    services:\n      web:\n        endpoints:\n"
     "          - {address: 10.0.0.1, port: 80}\n          - {address: 10.0.0.1, port: 80}\n",
     5, "sources.static.services.web.endpoints", "10.0.0.1:80 is listed twice in web"),
    ("sources:\n  static:\n    services:\n      web:\n        policy:\n          lb: fastest\n",
     6, "sources.static.services.web.policy.lb",
     "must be one of round_robin, weighted_round_robin, random, weighted_random, "
     "least_request, ring_hash, maglev, source_ip_hash, client_side_weighted_round_robin, "
     "got 'fastest'"),
    ("sources:\n  static:\n    services:\n      web:\n        policy:\n          lb: ring_hash\n"
     "          hash_on:\n            - header:x-user\n            - header\n", 9,
     "sources.static.services.web.policy.hash_on[1]",
     "header needs a name (1-256 token characters)"),
    ("sources:\n  static:\n    services:\n      web:\n        policy: {locality_weighted: 1}\n",
     5, "sources.static.services.web.policy.locality_weighted", "must be true or false, got 1"),
    ("sources:\n  static:\n    services:\n      web:\n        policy: {maglev_table_size: 100}\n",
     5, "sources.static.services.web.policy.maglev_table_size",
     "must be a prime in [2, 5000011], got 100"),
    ("sources:\n  static:\n    services:\n      web:\n        policy:\n"
     "          lb: client_side_weighted_round_robin\n"
     "          client_side_wrr: {weight_update_period: 50ms}\n", 7,
     "sources.static.services.web.policy.client_side_wrr.weight_update_period",
     "must be at least 100ms (the clients' floor), got '50ms'"),
    ("sources:\n  static:\n    services:\n      web:\n        polcy: {}\n", 5,
     "sources.static.services.web", "unknown field 'polcy', did you mean 'policy'?"),
    ("sources:\n  static:\n    services:\n      web: [10.0.0.1]\n", 4,
     "sources.static.services.web", "must be a mapping, got a list"),
    ("sources:\n  static:\n    services:\n      -bad-: {}\n", 4, "sources.static.services.-bad-",
     "must be 1-202 characters of letters, digits, '.', '_', '-', starting and ending with a "
     "letter or digit, got '-bad-'"),
    ("sources:\n  static:\n    file: nowhere.yaml\n", 3, "sources.static.file",
     "no such file: {dir}/nowhere.yaml"),
    ("sources:\n  etcd:\n    endpoints:\n      - http://127.0.0.1:2379\n      - ftp://x:1\n", 5,
     "sources.etcd.endpoints[1]", "etcd endpoint must look like http(s)://host:port, got "
     "'ftp://x:1'"),
    ("sources:\n  etcd:\n    endpoints: []\n", 3, "sources.etcd.endpoints",
     "needs at least one URL"),
    ("sources:\n  etcd:\n    username: xdscp\n", 3, "sources.etcd.password",
     "is required when username is set"),
    ("sources:\n  etcd:\n    tls: {cert: c.pem}\n", 3, "sources.etcd.tls.key",
     "is required when cert is set"),
    ("sources:\n  etcd:\n    tls:\n      ca: missing.pem\n", 4, "sources.etcd.tls.ca",
     "no such file: {dir}/missing.pem"),
    ("sources:\n  etcd:\n    grpc_targets: [payments/]\n", 3, "sources.etcd.grpc_targets[0]",
     "needs a target without trailing /: 'payments/'"),
    ("sources:\n  etcd:\n    password: 1234\n    username: u\n", 3, "sources.etcd.password",
     "must be a string, got 1234"),
    ("sources:\n  dns:\n    services:\n      - service: ledger\n"
     "        dns_name: _grpc._tcp.ledger.example.com\n        record_type: SRV\n"
     "        port: 80\n", 7, "sources.dns.services[0].port",
     "must be unset for SRV (records carry the port)"),
    ("sources:\n  dns:\n    resolve: {}\n", 3, "sources.dns",
     "unknown field 'resolve', did you mean 'resolver'?"),
    ("sources:\n  dns:\n    resolver:\n      timeout: 0\n", 4, "sources.dns.resolver.timeout",
     "must be in [0.01, 300.0], got 0"),
    ("xds:\n  tls:\n    cert: c.pem\n    key: nowhere.pem\n", 4, "xds.tls.key",
     "no such file: {dir}/nowhere.pem"),
    ("xds:\n  tls: {client_ca: c.pem}\n", 2, "xds.tls.cert", "is required when xds.tls is set"),
    ("xds:\n  address: 127.0.0.1:1\n  address: 127.0.0.1:2\n", 3, "xds.address", "duplicate key"),
    ("- xds\n", 1, "", "must be a mapping, got a list"),
    ("xds:\n  address: [1\n", 3, "", "invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("xds: &a\n  tls: *a\n", 2, "xds.tls", "recursive alias"),
    ("xds:\n  load_reporting:\n    interval: 0.5\n", 3, "xds.load_reporting.interval",
     "must be in [1.0, 3600.0], got 0.5"),
    ("xds:\n  load_reporting:\n    enabled: yes please\n", 3, "xds.load_reporting.enabled",
     "must be true or false, got 'yes please'"),
    ("xds:\n  load_reporting: {max_entries: 0}\n", 2, "xds.load_reporting.max_entries",
     "must be in [1, 10000000], got 0"),
    ("xds:\n  load_reporting: {metrics: [cpu, named_metrics.q]}\n", 2,
     "xds.load_reporting.metrics", "not an ORCA metric (or named_metrics.NAME): 'cpu'"),
    ("xds:\n  load_reporting: {intervals: 3}\n", 2, "xds.load_reporting",
     "unknown field 'intervals', did you mean 'interval'?"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD_FILES)
def test_a_bad_file_names_the_line_and_the_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    """Each invalid file is refused with FILE:LINE, the field's path and the model's reason."""
    (tmp_path / "c.pem").write_text("not checked here")
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigFieldError) as caught:
        load_config(path, {})
    where = f"{path}:{line}"
    expected = message.format(dir=tmp_path)
    assert str(caught.value) == (
        f"{where}: {field}: {expected}" if field else f"{where}: {expected}"
    )
    assert (caught.value.origin, caught.value.field) == (where, field)


def test_load_reporting_is_read_into_the_serve_and_translate_options(tmp_path: Path) -> None:
    """`xds.load_reporting`: the LRS interval and bounds in `ServeOptions.load`, whether
    clients are told to report in the translation's options; absent, the defaults (on)."""
    text = "xds:\n  load_reporting: {enabled: false, interval: 2, stale_after: 7, max_entries: 9,"
    text += " metrics: [mem_utilization, named_metrics.queue]}\n"
    serve = load_config(write_config(tmp_path, text), {}).serve
    assert (serve.load.interval_s, serve.load.stale_after_s, serve.load.max_entries) == (2, 7, 9)
    assert serve.translate.load_reporting is False
    assert serve.translate.load_metrics == ("mem_utilization", "named_metrics.queue")
    default = load_config(write_config(tmp_path, "xds: {}\n"), {}).serve
    assert default.load == LoadReporting()
    assert default.translate.load_reporting is True
    assert default.translate.load_metrics == ("application_utilization", "cpu_utilization")


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file (or a directory) is refused with the path and the reason."""
    with pytest.raises(ConfigError, match=r"cannot read .*nowhere\.yaml"):
        load_config(tmp_path / "nowhere.yaml", {})


def test_a_good_file_becomes_the_server_settings(tmp_path: Path) -> None:
    """Addresses, grouping, listener and static services are read into the runtime types;
    relative paths are relative to the file."""
    (tmp_path / "certs").mkdir()
    for name in ("xds.pem", "xds-key.pem"):
        (tmp_path / "certs" / name).write_text("pem")
    path = write_config(tmp_path, """\
        xds: {address: "[::1]:0", group_by: "metadata:team", tls: {cert: certs/xds.pem,
              key: certs/xds-key.pem}}
        admin: {address: 127.0.0.1:9}
        listener: {address: "::", port: 8080, domain_suffixes: [.svc], default_service: web}
        sources:
          static:
            services:
              web:
                policy: {lb: maglev, hash_on: [cookie:s]}
                endpoints:
                  - {address: 10.0.0.2, port: 80, locality: {zone: b}, metadata: {v: "2"}}
                  - {address: 10.0.0.1, port: 80, priority: 1, hash_key: one}
          etcd: {}
    """)  # fmt: skip
    config = load_config(path, {})
    serve = config.serve
    assert (serve.xds_host, serve.xds_port, serve.admin_port) == ("::1", 0, 9)
    assert serve.group_by == "metadata:team"
    assert serve.tls is not None
    assert serve.tls.cert_file == str(tmp_path / "certs" / "xds.pem")
    assert serve.tls.client_ca_file is None
    assert serve.translate.listener_address == "::"
    assert serve.translate.domain_suffixes == (".svc",)
    assert serve.translate.default_service == "web"
    assert config.static_services is not None
    web = config.static_services["web"]
    assert web.policy.lb is LbPolicy.MAGLEV
    assert [str(e) for e in web.endpoints] == ["10.0.0.2:80", "10.0.0.1:80"]
    assert web.endpoints[0].locality.zone == "b"
    assert dict(web.endpoints[0].metadata) == {"v": "2"}
    assert config.etcd is not None
    assert config.etcd.client.endpoints == ("http://127.0.0.1:2379",)
    assert config.dns is None
    assert config.static_file is None
    assert config.has_sources


def test_an_empty_file_is_the_defaults_without_sources(tmp_path: Path) -> None:
    """Nothing declared: the flags' defaults, and no source (serve then asks for one)."""
    config = load_config(write_config(tmp_path, "# nothing yet\n"), {})
    assert config.serve.xds_port == 18000
    assert config.serve.admin_port == 18001
    assert config.serve.translate.listener_port == 10000
    assert not config.has_sources


# --- environment ---------------------------------------------------------------------------


def test_environment_overrides_keys_at_any_depth(tmp_path: Path) -> None:
    """`XDSCP_A__B` replaces the file's value; lists split on commas; inside services the
    value is YAML and keys match case-insensitively; names without `__` are ignored."""
    path = write_config(tmp_path, WEB_CONFIG % 1 + "  etcd: {endpoints: [http://10.9.9.9:2379]}\n")
    env = {
        "XDSCP_XDS__ADDRESS": "0.0.0.0:19000",
        "XDSCP_LISTENER__PORT": "10080",
        "XDSCP_SOURCES__ETCD__ENDPOINTS": "a:2379, https://b:2379",
        "XDSCP_SOURCES__ETCD__PASSWORD": "007",
        "XDSCP_SOURCES__ETCD__USERNAME": "root",
        "XDSCP_SOURCES__STATIC__SERVICES__WEB__ENDPOINTS__1__WEIGHT": "7",
        "XDSCP_SOURCES__STATIC__SERVICES__WEB__POLICY": "{lb: weighted_round_robin}",
        "XDSCP_ETCD": "http://ignored:1",
        "XDSCP_UPDATE_GOLDEN": "1",
    }
    config = load_config(path, env)
    assert (config.serve.xds_host, config.serve.xds_port) == ("0.0.0.0", 19000)
    assert config.serve.translate.listener_port == 10080
    assert config.etcd is not None
    assert config.etcd.client.endpoints == ("a:2379", "https://b:2379")
    assert config.etcd.client.password == "007"  # a string key stays a string
    assert config.static_services is not None
    web = config.static_services["web"]
    assert web.policy.lb is LbPolicy.WEIGHTED_ROUND_ROBIN
    assert {str(e): e.weight for e in web.endpoints} == {"10.0.0.1:80": 1, "10.0.0.2:80": 7}


def test_environment_alone_configures_the_server() -> None:
    """Without a file, the environment still applies (a container needs nothing else)."""
    env = {
        "XDSCP_ADMIN__ADDRESS": "127.0.0.1:0",
        "XDSCP_SOURCES__STATIC__SERVICES": "{web: {endpoints: [{address: 10.0.0.1, port: 80}]}}",
    }
    config = load_config(None, env)
    assert config.serve.admin_port == 0
    assert config.static_services is not None
    assert list(config.static_services) == ["web"]


def test_an_empty_override_restores_the_default(tmp_path: Path) -> None:
    """`XDSCP_LISTENER__DEFAULT_SERVICE=` removes the file's value; an empty section
    variable removes the section (here: no etcd source)."""
    path = write_config(tmp_path, "listener: {default_service: web}\n")
    assert load_config(path, {}).serve.translate.default_service == "web"
    config = load_config(path, {"XDSCP_LISTENER__DEFAULT_SERVICE": ""})
    assert config.serve.translate.default_service is None
    with_etcd = write_config(tmp_path, WEB_CONFIG % 1 + "  etcd: {}\n", "etcd.yaml")
    assert load_config(with_etcd, {}).etcd is not None
    assert load_config(with_etcd, {"XDSCP_SOURCES__ETCD": " "}).etcd is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("XDSCP_LISTENER__PORT", "0", "XDSCP_LISTENER__PORT: listener.port: "
         "must be in [1, 65535], got 0"),
        ("XDSCP_LISTENER__PORT", "http", "XDSCP_LISTENER__PORT: listener.port: "
         "must be an integer in [1, 65535], got 'http'"),
        ("XDSCP_XDS__ADRESS", "127.0.0.1:1", "XDSCP_XDS__ADRESS: xds: "
         "unknown field 'adress', did you mean 'address'?"),
        ("XDSCP_SOURCES__ETCD__ENDPOINTS", "a:2379,ftp://b", "XDSCP_SOURCES__ETCD__ENDPOINTS: "
         "sources.etcd.endpoints[1]: etcd endpoint must look like http(s)://host:port, "
         "got 'ftp://b'"),
        ("XDSCP_SOURCES__STATIC__SERVICES__WEB__ENDPOINTS__0__WEIGHT", "0",
         "XDSCP_SOURCES__STATIC__SERVICES__WEB__ENDPOINTS__0__WEIGHT: "
         "sources.static.services.web.endpoints[0].weight: must be in [1, 4294967295], got 0"),
        ("XDSCP_SOURCES__STATIC__SERVICES__WEB__ENDPOINTS__5__WEIGHT", "2",
         "XDSCP_SOURCES__STATIC__SERVICES__WEB__ENDPOINTS__5__WEIGHT: "
         "sources.static.services.web.endpoints[5]: no such list item"),
        ("XDSCP_SOURCES__DNS", "{services: [", "XDSCP_SOURCES__DNS: sources.dns: not valid "
         "YAML: expected the node content, but found '<stream end>'"),
        ("XDSCP_XDS____ADDRESS", "x", "XDSCP_XDS____ADDRESS: empty key between '__'"),
    ],
)  # fmt: skip
def test_a_bad_override_names_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    """The error of an override starts with the variable's name, then the field."""
    path = write_config(tmp_path, WEB_CONFIG % 1)
    with pytest.raises(ConfigFieldError) as caught:
        load_config(path, {name: value})
    assert str(caught.value) == message


# --- the example ---------------------------------------------------------------------------


def _keys(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, kind in schema.items():
        out.append((*prefix, key))
        if isinstance(kind, dict):
            out.extend(_keys(kind, (*prefix, key)))
    return out


def _opted_in(text: str) -> str:
    """The example with every opt-in part (`#: key: value`) turned on."""
    return re.sub(r"^(\s*)#: ", r"\1", text, flags=re.MULTILINE)


def test_the_example_file_runs_as_it_is(tmp_path: Path) -> None:
    """examples/xdscp.yaml as shipped loads with only the files shipped beside it (the
    services file): no certificate, password or private nameserver is needed."""
    copy = tmp_path / "xdscp.yaml"
    shutil.copy(EXAMPLE, copy)
    shutil.copy(EXAMPLE.parent / "services.yaml", tmp_path / "services.yaml")
    config = load_config(copy, {})
    assert config.serve.tls is None
    assert config.etcd is not None
    assert not config.etcd.client.tls
    assert config.etcd.client.username is None
    assert config.dns is not None
    assert config.static_services is not None
    assert load_services((tmp_path / "services.yaml").read_text())["cart"].policy.slow_start


def test_the_example_file_loads_and_shows_every_key(tmp_path: Path) -> None:
    """examples/xdscp.yaml with its opt-in parts on validates (with its certificate files
    present) and uses every key of the schema, so it cannot fall behind the loader."""
    example = yaml.safe_load(_opted_in(EXAMPLE.read_text()))
    for path in _keys(SCHEMA):
        node = example
        for part in path:
            assert isinstance(node, dict)
            assert part in node, f"examples/xdscp.yaml lacks {'.'.join(path)}"
            node = node[part]
    copy = tmp_path / "xdscp.yaml"
    copy.write_text(_opted_in(EXAMPLE.read_text()))
    files = [*example["xds"]["tls"].values(), *example["sources"]["etcd"]["tls"].values()]
    for name in [*files, example["sources"]["static"]["file"]]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("services: {}\n")
    config = load_config(copy, {})
    assert config.static_services is not None
    assert set(config.static_services) == {"web", "api"}
    assert config.etcd is not None
    assert config.etcd.client.tls
    assert config.etcd.layout.grpc_targets[0].service == "payments"
    assert config.dns is not None
    assert [s.service for s in config.dns.services] == ["search", "ledger"]
    assert config.serve.tls is not None
    assert config.serve.tls.client_ca_file == str(tmp_path / "certs" / "ca.pem")


# --- the file's services, live ---------------------------------------------------------------


async def test_the_file_services_reload_and_keep_the_last_good(tmp_path: Path) -> None:
    """An edit of the static services is published; a bad edit keeps the last good set and
    logs the line and field; an edit elsewhere is logged as needing a restart."""
    path = write_config(tmp_path, WEB_CONFIG % 1)
    loaded = load_config(path, {})
    source = ConfigServicesSource(path, {}, loaded, poll_s=0.01)
    published: list[ServiceSet] = []
    with capture_logs() as logs:
        task = asyncio.create_task(source.run(published.append))
        try:
            await wait_for(lambda: len(published) == 1)
            assert source.ready
            assert source.name == "config"
            rewrite(path, WEB_CONFIG % 4)
            await wait_for(lambda: len(published) == 2)
            assert {e.weight for e in published[1]["web"].endpoints} == {1, 4}
            rewrite(path, WEB_CONFIG % -1)
            await wait_for(lambda: any(e["event"] == "static_services_invalid" for e in logs))
            rewrite(path, WEB_CONFIG % 4 + "admin: {address: 127.0.0.1:9}\n")
            await wait_for(lambda: len(published) == 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert published[2] == published[1]
    invalid = next(e for e in logs if e["event"] == "static_services_invalid")
    assert invalid["error"] == (
        f"{path}:9: sources.static.services.web.endpoints[1].weight: "
        "must be in [1, 4294967295], got -1"
    )
    restart = next(e for e in logs if e["event"] == "config_change_needs_restart")
    assert restart["sections"] == ["serve"]
