"""`xdscp serve`'s settings from several places: flag > environment > file > default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.files import WEB_CONFIG, write_config
from xdscp.cli.serve import command, resolve
from xdscp.config import ServerConfig, load_config
from xdscp.errors import ConfigFieldError


def _resolved(args: list[str], env: dict[str, str]) -> ServerConfig:
    """What `xdscp serve ARGS` would run, parsed by the real command (without serving)."""
    ctx = command.make_context("serve", list(args))
    params: dict[str, Any] = dict(ctx.params)
    use_etcd, config_file = params.pop("use_etcd"), params.pop("config_file")
    return resolve(ctx, params, load_config(config_file, env), use_etcd)


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    """Each level wins over the ones below it, key by key."""
    more = (
        "xds: {address: 127.0.0.1:1000}\nadmin: {address: 127.0.0.1:2000}\n"
        "listener: {port: 3000, domain_suffixes: [.file]}\n"
    )
    path = write_config(tmp_path, WEB_CONFIG % 1 + more)
    env = {"XDSCP_XDS__ADDRESS": "127.0.0.1:1001", "XDSCP_ADMIN__ADDRESS": "127.0.0.1:2001"}
    flags = ["--config", str(path), "--xds", "127.0.0.1:1002", "--domain-suffix", ".flag"]
    config = _resolved(flags, env)
    assert config.serve.xds_port == 1002  # flag > env > file
    assert config.serve.admin_port == 2001  # env > file
    assert config.serve.translate.listener_port == 3000  # file > default
    assert config.serve.translate.domain_suffixes == (".flag",)
    assert config.serve.translate.listener_address == "0.0.0.0"  # default
    assert config.serve.group_by == "kind"
    default = _resolved(["--config", str(path)], {})
    assert (default.serve.xds_port, default.serve.admin_port) == (1000, 2000)
    assert _resolved(["--static", str(path)], {}).serve.xds_port == 18000


def test_precedence_of_the_etcd_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--etcd` (or its variable XDSCP_ETCD) replaces the file's endpoints, other etcd keys
    stay; `--no-registry` turns the file's etcd source off; without a section or a flag there
    is none."""
    path = write_config(tmp_path, "sources:\n  etcd:\n    endpoints: [http://10.0.0.9:2379]\n"
                  "    services_prefix: /file/\n")  # fmt: skip
    config = _resolved(["--config", str(path), "--etcd", "http://10.0.0.1:2379,10.0.0.2:2379"], {})
    assert config.etcd is not None
    assert config.etcd.client.endpoints == ("http://10.0.0.1:2379", "10.0.0.2:2379")
    assert config.etcd.layout.services_prefix == "/file/"
    assert config.etcd.layout.policies_prefix == "/xdscp/policies/"
    prefixed = _resolved(["--config", str(path), "--services-prefix", "/flag/"], {})
    assert prefixed.etcd is not None
    assert prefixed.etcd.layout.services_prefix == "/flag/"
    assert prefixed.etcd.client.endpoints == ("http://10.0.0.9:2379",)
    assert _resolved(["--config", str(path), "--no-registry"], {}).etcd is None
    monkeypatch.setenv("XDSCP_ETCD", "http://10.0.0.3:2379")
    from_env = _resolved(["--config", str(path)], {})
    assert from_env.etcd is not None
    assert from_env.etcd.client.endpoints == ("http://10.0.0.3:2379",)
    monkeypatch.delenv("XDSCP_ETCD")
    assert (
        _resolved(["--config", str(write_config(tmp_path, WEB_CONFIG % 1, "s.yaml"))], {}).etcd
        is None
    )


def test_flags_add_to_the_file_sources_and_tls(tmp_path: Path) -> None:
    """`--static FILE` replaces only `sources.static.file` (the file's own services stay);
    `--tls-cert`/`--tls-key` keep the file's client CA; `--group-by` is checked."""
    for name in ("a.pem", "b.pem", "ca.pem", "live.yaml"):
        (tmp_path / name).write_text("x")
    path = write_config(
        tmp_path, WEB_CONFIG % 1 + "xds: {tls: {cert: a.pem, key: a.pem, client_ca: ca.pem}}\n"
    )
    live = str(tmp_path / "live.yaml")
    args = ["--config", str(path), "--static", live, "--tls-cert", str(tmp_path / "b.pem"),
            "--group-by", "cluster"]  # fmt: skip
    config = _resolved(args, {})
    assert config.static_file == live
    assert config.static_services is not None
    assert set(config.static_services) == {"web"}
    assert config.serve.tls is not None
    assert config.serve.tls.cert_file == str(tmp_path / "b.pem")
    assert config.serve.tls.key_file == str(tmp_path / "a.pem")
    assert config.serve.tls.client_ca_file == str(tmp_path / "ca.pem")
    assert config.serve.group_by == "cluster"
    from click import BadParameter, UsageError

    with pytest.raises(BadParameter, match="metadata:KEY"):
        _resolved(["--config", str(path), "--group-by", "zone"], {})
    with pytest.raises(UsageError, match="--tls-key"):
        _resolved(["--static", live, "--tls-cert", str(tmp_path / "b.pem")], {})


def test_write_timeout_from_file_environment_and_flag(tmp_path: Path) -> None:
    """`xds.write_timeout` (seconds, default 30) is overridden by XDSCP_XDS__WRITE_TIMEOUT and
    by `--write-timeout`; zero, negative or non-numbers name the field."""
    path = write_config(tmp_path, WEB_CONFIG % 1 + "xds: {write_timeout: 12.5}\n")
    assert load_config(None, {}).serve.write_timeout_s == 30.0
    assert load_config(path, {}).serve.write_timeout_s == 12.5
    assert load_config(path, {"XDSCP_XDS__WRITE_TIMEOUT": "3"}).serve.write_timeout_s == 3.0
    flagged = _resolved(["--config", str(path), "--write-timeout", "0.5"], {})
    assert flagged.serve.write_timeout_s == 0.5
    for bad in ("0", "-1", "soon", "true"):
        with pytest.raises(ConfigFieldError, match=r"xds\.write_timeout: must be seconds > 0"):
            load_config(path, {"XDSCP_XDS__WRITE_TIMEOUT": bad})


def test_load_reporting_flags_over_the_file(tmp_path: Path) -> None:
    """`--no-load-reporting` turns off what the file turned on; `--load-report-interval`
    replaces the file's interval and keeps reporters fresh for 3.5 intervals at least."""
    more = "xds:\n  load_reporting: {enabled: true, interval: 5, stale_after: 20}\n"
    path = write_config(tmp_path, WEB_CONFIG % 1 + more)
    file_only = _resolved(["--config", str(path)], {}).serve
    assert (file_only.load.interval_s, file_only.load.stale_after_s) == (5, 20)
    assert file_only.translate.load_reporting is True
    flags = ["--config", str(path), "--no-load-reporting", "--load-report-interval", "30"]
    flagged = _resolved(flags, {}).serve
    assert flagged.translate.load_reporting is False
    assert (flagged.load.interval_s, flagged.load.stale_after_s) == (30, 105)
