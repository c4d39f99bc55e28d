"""examples/ as a user runs it: `xdscp serve --config examples/xdscp.yaml` (its header's
command) serves its services; with the TLS part opted in and certificates from
`examples/make-certs.sh`, the xDS port speaks mutual TLS with them. Each runs in its own
network namespace, on the file's own (default) ports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.harness.paths import ROOT
from tests.integration.docs.isolated import (
    ETCD_PRELUDE,
    VENV_BIN,
    isolation_problem,
    logs,
    plain_path,
    run_isolated,
)

pytestmark = [pytest.mark.etcd, pytest.mark.slow, pytest.mark.requires("curl")]

EXAMPLE = ROOT / "examples" / "xdscp.yaml"
READY = "curl -sf --retry 60 --retry-connrefused http://127.0.0.1:18001/readyz > /dev/null\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of examples/ in a folder, for scripts run in their own namespaces."""
    problem = isolation_problem()
    if problem is not None:
        pytest.skip(problem)
    shutil.copytree(
        ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("certs")
    )
    return tmp_path


def _env(tmp_path: Path) -> dict[str, str]:
    path = f"{VENV_BIN}{os.pathsep}{plain_path()}"
    return {**os.environ, "PATH": path, "TMPDIR": str(tmp_path)}


def _header_command() -> str:
    first = EXAMPLE.read_text().splitlines()[0]
    assert first.startswith("# xdscp serve --config examples/xdscp.yaml"), first
    return first.removeprefix("# ")


def test_example_config_runs_as_its_header_says(workdir: Path) -> None:
    """The header's command, beside a plain etcd: serve becomes ready and has clusters for
    the file's services (web, api) and the services file's (cart)."""
    script = (
        f"{ETCD_PRELUDE}{_header_command()} > serve.log 2>&1 &\n{READY}"
        "curl -s http://127.0.0.1:18001/debug/resources > resources.json\nkill $(jobs -p)\n"
    )
    ran = run_isolated(script, workdir, _env(workdir))
    assert ran.status == 0, f"{ran.output[-3000:]}\n{logs(workdir)}"
    resources = json.loads((workdir / "resources.json").read_text())
    assert set(resources["envoy"]["Cluster"]) >= {"web", "api", "cart"}


@pytest.mark.requires("openssl")
def test_example_config_with_tls_opted_in(workdir: Path) -> None:
    """make-certs.sh, then the `#:` of xds.tls removed: serve starts on TLS with client
    certificates required, and a client with make-certs.sh's client certificate completes
    the handshake (verified against its CA, ALPN h2)."""
    config = workdir / "examples" / "xdscp.yaml"
    lines = config.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("#: tls:"))
    for i in range(start, start + 4):
        lines[i] = lines[i].replace("#: ", "", 1)
    config.write_text("".join(lines))
    certs = "examples/certs"
    script = (
        f"examples/make-certs.sh\n{ETCD_PRELUDE}{_header_command()} > serve.log 2>&1 &\n{READY}"
        f"openssl s_client -connect 127.0.0.1:18000 -alpn h2 -CAfile {certs}/ca.pem"
        f" -cert {certs}/client.pem -key {certs}/client-key.pem -verify_return_error"
        " < /dev/null > handshake.log 2>&1\nkill $(jobs -p)\n"
    )
    ran = run_isolated(script, workdir, _env(workdir))
    assert ran.status == 0, f"{ran.output[-3000:]}\n{logs(workdir)}"
    handshake = (workdir / "handshake.log").read_text(errors="replace")  # binary bits too
    assert "Verify return code: 0 (ok)" in handshake
    assert "ALPN protocol: h2" in handshake
