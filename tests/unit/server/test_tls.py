"""xdscp.server.tls: the xDS port's TLS files are read and checked before gRPC sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.certs import make_tls_files
from xdscp.errors import ConfigError
from xdscp.procs.etcd import TlsFiles
from xdscp.server.tls import load_server_tls


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA with a server and a client certificate."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_good_files_are_returned_as_read(files: TlsFiles) -> None:
    """Matching certificate and key (and a CA) come back as the bytes gRPC is given."""
    loaded = load_server_tls(str(files.server_cert), str(files.server_key), str(files.ca))
    assert loaded.cert == files.server_cert.read_bytes()
    assert loaded.key == files.server_key.read_bytes()
    assert loaded.client_ca == files.ca.read_bytes()
    assert load_server_tls(str(files.server_cert), str(files.server_key)).client_ca is None


def test_a_file_that_cannot_be_read_is_named_with_the_reason(
    files: TlsFiles, tmp_path: Path
) -> None:
    """A directory or a missing file: the error names the file and the OS's reason."""
    with pytest.raises(ConfigError) as caught:
        load_server_tls(str(files.server_cert), str(tmp_path))
    assert str(caught.value) == f"xDS TLS key {tmp_path}: cannot read it: Is a directory"
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as caught:
        load_server_tls(str(files.server_cert), str(files.server_key), str(missing))
    assert str(caught.value) == (
        f"xDS TLS client CA {missing}: cannot read it: No such file or directory"
    )


def test_an_empty_certificate_is_named(files: TlsFiles, tmp_path: Path) -> None:
    """An empty (or blank) certificate file is called empty, not a PEM problem."""
    empty = tmp_path / "empty.pem"
    empty.write_text("\n \n")
    with pytest.raises(ConfigError, match=f"certificate {empty}: the file is empty$"):
        load_server_tls(str(empty), str(files.server_key))


def test_the_client_certificate_key_does_not_match_the_server_certificate(
    files: TlsFiles,
) -> None:
    """Another certificate's key (the client's) is refused, naming both files."""
    with pytest.raises(ConfigError) as caught:
        load_server_tls(str(files.server_cert), str(files.client_key))
    assert str(caught.value) == (
        f"xDS TLS key {files.client_key}: does not match the certificate {files.server_cert}"
    )


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=512).filter(lambda b: b.strip()))
def test_arbitrary_bytes_are_never_a_certificate_key_or_ca(
    files: TlsFiles, tmp_path: Path, junk: bytes
) -> None:
    """Random bytes as certificate, key or client CA: always a ConfigError naming that file
    (never an SSL exception, never accepted)."""
    bad = tmp_path / "junk.pem"
    bad.write_bytes(junk)
    cert, key = str(files.server_cert), str(files.server_key)
    for args, what in (
        ((str(bad), key, None), "certificate"),
        ((cert, str(bad), None), "key"),
        ((cert, key, str(bad)), "client CA"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_server_tls(*args)
        assert str(caught.value).startswith(f"xDS TLS {what} {bad}: ")
