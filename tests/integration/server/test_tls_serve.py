"""`xdscp serve --tls-cert --tls-key [--tls-client-ca]` as users run it: bad files stop it at
start with one line naming the file; good ones serve clients whose bootstraps come from
`xdscp bootstrap ... --tls-ca` (helpers in tests/harness/tls.py, used by the Envoy and gRPC
TLS tests too)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.certs import make_tls_files
from tests.harness.tls import (
    STARTED_S,
    XDSCP,
    child_env,
    serve,
    static_file,
)

# -- bad TLS files: one line naming the file, exit 1, before anything binds ------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good files, a second CA's key, a non-PEM file, an encrypted key, an unreadable key."""
    from cryptography.hazmat.primitives import serialization

    base = tmp_path_factory.mktemp("certs")
    good, other = make_tls_files(base / "good"), make_tls_files(base / "other")
    garbage = base / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    key = serialization.load_pem_private_key(good.server_key.read_bytes(), password=None)
    encrypted = base / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    unreadable = base / "unreadable.key"
    unreadable.write_bytes(good.server_key.read_bytes())
    unreadable.chmod(0)
    return {
        "cert": good.server_cert, "key": good.server_key, "ca": good.ca,
        "other_key": other.server_key, "garbage": garbage, "encrypted": encrypted,
        "unreadable": unreadable,
    }  # fmt: skip


BAD = [
    pytest.param("garbage", "key", None, "certificate", "no PEM certificate in it", id="cert"),
    pytest.param("cert", "garbage", None, "key", "not a PEM private key", id="key"),
    pytest.param("key", "key", None, "certificate", "no PEM certificate in it", id="key-as-cert"),
    pytest.param(
        "cert", "other_key", None, "key", "does not match the certificate {cert}", id="mismatch"
    ),
    pytest.param(
        "cert",
        "encrypted",
        None,
        "key",
        "encrypted: give the key without a passphrase",
        id="encrypted",
    ),
    pytest.param("cert", "key", "garbage", "client CA", "no PEM certificate in it", id="ca"),
    pytest.param(
        "cert",
        "unreadable",
        None,
        "key",
        "cannot read it: Permission denied",
        id="unreadable",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file"),
    ),
]


def _run_serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    static = static_file(tmp_path / "services.yaml", [("10.0.0.1", 80)])
    return subprocess.run(
        [*XDSCP, "serve", "--static", str(static), "--xds", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", *flags],
        capture_output=True, text=True, timeout=60, check=False, env=child_env(),
    )  # fmt: skip


@pytest.mark.parametrize(("cert", "key", "ca", "what", "problem"), BAD)
def test_bad_tls_flags_stop_serve_with_one_line_naming_the_file(  # noqa: PLR0917
    tmp_path: Path,
    certs: dict[str, Path],
    cert: str,
    key: str,
    ca: str | None,
    what: str,
    problem: str,
) -> None:
    """A certificate, key or client CA that is not PEM, a key of another certificate, an
    encrypted or unreadable key: serve exits 1 with exactly one line naming the file and the
    problem (no traceback, no "Failed to bind")."""
    flags = ["--tls-cert", str(certs[cert]), "--tls-key", str(certs[key])]
    if ca is not None:
        flags += ["--tls-client-ca", str(certs[ca])]
    done = _run_serve(tmp_path, *flags)
    bad = certs[{"certificate": cert, "key": key, "client CA": ca or ""}[what]]
    expected = f"Error: xDS TLS {what} {bad}: {problem.format(cert=certs[cert])}"
    assert (done.returncode, done.stderr.strip()) == (1, expected), done.stderr
    assert "xdscp serving" not in done.stdout


def test_bad_tls_in_the_config_file_stops_serve_the_same_way(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    """`xds.tls` in a --config file goes through the same check: a key of another
    certificate is one line naming it, exit 1."""
    config = tmp_path / "xdscp.yaml"
    config.write_text(
        "xds:\n  address: 127.0.0.1:0\n"
        f"  tls: {{cert: {certs['cert']}, key: {certs['other_key']}}}\n"
        "admin: {address: 127.0.0.1:0}\n"
        "sources: {static: {services: {web: {endpoints: [{address: 10.0.0.1, port: 80}]}}}}\n"
    )
    done = subprocess.run(
        [*XDSCP, "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False, env=child_env(),
    )  # fmt: skip
    expected = (
        f"Error: xDS TLS key {certs['other_key']}: does not match the certificate {certs['cert']}"
    )
    assert (done.returncode, done.stderr.strip()) == (1, expected), done.stderr


def test_good_tls_files_serve(tmp_path: Path, certs: dict[str, Path]) -> None:
    """The same files, matching, start serve (the check refuses only what is wrong)."""
    static = static_file(tmp_path / "services.yaml", [("10.0.0.1", 80)])
    flags = ("--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"]))
    start = time.monotonic()
    with serve(tmp_path / "run", "--static", str(static), *flags, "--tls-client-ca",
               str(certs["ca"])) as served:  # fmt: skip
        assert served.admin("/debug/resources")["envoy"]["Cluster"].keys() == {"web"}
    assert time.monotonic() - start < STARTED_S
