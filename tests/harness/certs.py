"""Throwaway TLS certificates: a CA, a server certificate for 127.0.0.1 and a client one."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from xdscp.procs.etcd import TlsFiles


def _issue(
    common_name: str, issuer: Any, signer: Any, *, ca: bool = False, server: bool = False
) -> tuple[Any, Any]:
    """A key and a certificate for `common_name`, signed by `signer` (self-signed if None)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return key, builder.sign(signer or key, hashes.SHA256())


def _save(directory: Path, stem: str, key: Any, cert: Any) -> tuple[Path, Path]:
    """Write `stem.pem` and `stem.key` (mode 600); return their paths."""
    from cryptography.hazmat.primitives import serialization

    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = _issue("xdscp test CA", None, None, ca=True)
    server_key, server_cert = _issue("127.0.0.1", ca_cert.subject, ca_key, server=True)
    client_key, client_cert = _issue("xdscp-client", ca_cert.subject, ca_key)
    ca, _ = _save(directory, "ca", ca_key, ca_cert)
    server_pem, server_pkey = _save(directory, "server", server_key, server_cert)
    client_pem, client_pkey = _save(directory, "client", client_key, client_cert)
    return TlsFiles(ca, server_pem, server_pkey, client_pem, client_pkey)
