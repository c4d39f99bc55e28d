"""The xDS port's TLS files, read and checked at start.

gRPC takes PEM bytes without looking at them and only fails when the port is added, with
"Failed to bind to address" whatever was wrong. So every file is checked first with the
standard library's OpenSSL: a bad one is a `ConfigError` naming the file and the problem
(`xDS TLS key /etc/xdscp/tls.key: does not match the certificate /etc/xdscp/tls.pem`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from xdscp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ServerTlsFiles:
    """The PEM bytes of a checked certificate, its key and (mutual TLS) the client CA."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None


class _EncryptedKeyError(Exception):
    """Raised by the password callback: OpenSSL asked for a passphrase."""


def _password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal; gRPC cannot use such a key.
    raise _EncryptedKeyError


def _fail(what: str, path: str, problem: str) -> ConfigError:
    return ConfigError(f"xDS TLS {what} {path}: {problem}")


def _read(what: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(what, path, f"cannot read it: {exc.strerror or exc}") from None
    if not data.strip():
        raise _fail(what, path, "the file is empty")
    return data


def _check_certificates(what: str, path: str) -> None:
    """At least one PEM certificate in the file (the chain's order is checked with the key)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise _fail(what, path, "no PEM certificate in it") from None


def _check_key(cert_file: str, key_file: str) -> None:
    """The key is an unencrypted PEM private key, and the certificate's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file, password=_password)
    except _EncryptedKeyError:
        raise _fail("key", key_file, "encrypted: give the key without a passphrase") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _fail("key", key_file, f"does not match the certificate {cert_file}") from None
        raise _fail("key", key_file, "not a PEM private key") from None


def load_server_tls(
    cert_file: str, key_file: str, client_ca_file: str | None = None
) -> ServerTlsFiles:
    """Read and check the xDS server's TLS files; `ConfigError` names the first bad one."""
    cert, key = _read("certificate", cert_file), _read("key", key_file)
    client_ca = _read("client CA", client_ca_file) if client_ca_file else None
    _check_certificates("certificate", cert_file)
    _check_key(cert_file, key_file)
    if client_ca_file:
        _check_certificates("client CA", client_ca_file)
    return ServerTlsFiles(cert, key, client_ca)
