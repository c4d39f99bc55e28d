"""`xdscp bootstrap envoy|grpc --tls-ca --tls-cert --tls-key --locality`: TLS bootstraps and
the node's locality, as Envoy and gRPC read them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.certs import make_tls_files
from xdscp.cli import main
from xdscp.clients import ClientTls, locality_json, parse_locality
from xdscp.errors import ConfigError
from xdscp.model import Locality
from xdscp.procs import find_binary

BASE = ("--node-id", "n1", "--xds", "127.0.0.1:18000")
MTLS = ("--tls-ca", "/certs/ca.pem", "--tls-cert", "/certs/c.pem", "--tls-key", "/certs/c.key")


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["bootstrap", *args])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _tls_context(doc: dict[str, Any]) -> dict[str, Any]:
    socket = doc["static_resources"]["clusters"][0]["transport_socket"]
    assert socket["name"] == "envoy.transport_sockets.tls"
    context: dict[str, Any] = socket["typed_config"]
    assert context["@type"].endswith("tls.v3.UpstreamTlsContext")
    return context


def test_envoy_tls_verifies_xdscp_with_the_ca_and_its_address() -> None:
    """--tls-ca: the xDS cluster speaks TLS with ALPN h2, trusts the CA and requires the
    replica's address in xdscp's certificate (IP SAN, as gRPC checks); no client certificate."""
    common = _tls_context(_run("envoy", *BASE, "--tls-ca", "/certs/ca.pem"))["common_tls_context"]
    assert common == {
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": {"filename": "/certs/ca.pem"},
            "match_typed_subject_alt_names": [
                {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}
            ],
        },
    }


def test_envoy_mutual_tls_presents_the_client_certificate() -> None:
    """--tls-cert and --tls-key add the client certificate to the xDS cluster's TLS."""
    common = _tls_context(_run("envoy", *BASE, *MTLS))["common_tls_context"]
    assert common["tls_certificates"] == [
        {
            "certificate_chain": {"filename": "/certs/c.pem"},
            "private_key": {"filename": "/certs/c.key"},
        }
    ]
    assert common["validation_context"]["trusted_ca"] == {"filename": "/certs/ca.pem"}


def test_envoy_tls_to_named_replicas_sends_sni_and_checks_dns_names() -> None:
    """One named replica: its name is the SNI and a DNS SAN to match; several: each connection
    sends its own endpoint's name (auto_host_sni); an IPv6 replica is matched compressed."""
    one = _tls_context(_run("envoy", "--node-id", "n", "--xds", "xdscp:18000", *MTLS))
    assert one["sni"] == "xdscp"
    assert "auto_host_sni" not in one
    many = _tls_context(
        _run("envoy", "--node-id", "n", "--xds", "a:1", "--xds", "b:1", "--xds",
             "[0:0::1]:1", "--tls-ca", "ca.pem")
    )  # fmt: skip
    assert many["auto_host_sni"] is True
    assert "sni" not in many
    assert many["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "a"}},
        {"san_type": "DNS", "matcher": {"exact": "b"}},
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "::1"}},
    ]


def test_envoy_tls_without_a_ca_trusts_the_system_roots() -> None:
    """A client certificate without --tls-ca: xdscp's certificate is still verified, against
    the system's roots (as gRPC does), never accepted unverified."""
    args = ("--tls-cert", "c.pem", "--tls-key", "c.key")
    validation = _tls_context(_run("envoy", *BASE, *args))["common_tls_context"][
        "validation_context"
    ]
    assert validation["system_root_certs"] == {}
    assert "trusted_ca" not in validation


def test_without_tls_options_the_bootstraps_stay_plaintext() -> None:
    """No --tls-*: Envoy's xDS cluster has no transport socket, gRPC's creds are insecure,
    and no locality is written."""
    envoy = _run("envoy", *BASE)
    assert "transport_socket" not in envoy["static_resources"]["clusters"][0]
    assert "locality" not in envoy["node"]
    grpc = _run("grpc", *BASE)
    assert grpc["xds_servers"][0]["channel_creds"] == [{"type": "insecure"}]
    assert "locality" not in grpc["node"]


def test_grpc_tls_channel_creds_name_the_files() -> None:
    """gRPC gets `tls` channel creds (gRFC A65) naming the CA, certificate and key files;
    with --tls-ca alone only the CA."""
    creds = _run("grpc", *BASE, *MTLS)["xds_servers"][0]["channel_creds"]
    assert creds == [
        {
            "type": "tls",
            "config": {
                "ca_certificate_file": "/certs/ca.pem",
                "certificate_file": "/certs/c.pem",
                "private_key_file": "/certs/c.key",
            },
        }
    ]
    only_ca = _run("grpc", *BASE, "--tls-ca", "ca.pem")["xds_servers"][0]["channel_creds"]
    assert only_ca == [{"type": "tls", "config": {"ca_certificate_file": "ca.pem"}}]


@pytest.mark.parametrize("kind", ["envoy", "grpc"])
@pytest.mark.parametrize(
    "given", [("--tls-cert", "c.pem"), ("--tls-key", "c.key"), ("--tls-ca", "a", "--tls-key", "k")]
)
def test_a_certificate_without_its_key_is_a_usage_error(kind: str, given: tuple[str, ...]) -> None:
    """--tls-cert without --tls-key (or the reverse) is refused, naming both options."""
    result = CliRunner().invoke(main, ["bootstrap", kind, *BASE, *given])
    assert result.exit_code == 2
    assert "--tls-cert and --tls-key go together" in result.output


@pytest.mark.parametrize("kind", ["envoy", "grpc"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("us-east1", {"region": "us-east1"}),
        ("us-east1/us-east1-b", {"region": "us-east1", "zone": "us-east1-b"}),
        ("eu/eu-a/rack-7", {"region": "eu", "zone": "eu-a", "sub_zone": "rack-7"}),
        ("/eu-a", {"zone": "eu-a"}),
    ],
)
def test_locality_sets_the_node_locality(kind: str, text: str, expected: dict[str, str]) -> None:
    """--locality REGION[/ZONE[/SUB_ZONE]] becomes node.locality in both bootstraps."""
    assert _run(kind, *BASE, "--locality", text)["node"]["locality"] == expected


@pytest.mark.parametrize("bad", ["", "/", "//", "a/b/c/d", " a", "a/ b", "a\tb", "a/\n"])
def test_a_malformed_locality_is_a_usage_error(bad: str) -> None:
    """Empty, more than three parts, edge spaces or control characters: refused by name."""
    result = CliRunner().invoke(main, ["bootstrap", "grpc", *BASE, "--locality", bad])
    assert result.exit_code == 2
    assert "--locality" in result.output


_PART = st.text(
    st.characters(codec="utf-8", exclude_characters="/", exclude_categories=("Cc", "Cs")),
    max_size=12,
).filter(lambda part: part == part.strip() and part.isprintable())


@given(st.lists(_PART, min_size=1, max_size=3).filter(any))
def test_locality_parsing_round_trips(parts: list[str]) -> None:
    """Any one to three printable parts (not all empty) parse into the same parts, and the
    written locality holds exactly the non-empty ones under their names."""
    locality = parse_locality("/".join(parts))
    padded = [*parts, "", ""][:3]
    assert locality == Locality(*padded)
    names = ("region", "zone", "sub_zone")
    assert locality_json(locality) == {n: p for n, p in zip(names, padded, strict=True) if p}


@given(st.lists(st.text(max_size=4), min_size=4, max_size=6))
def test_more_than_three_locality_parts_never_parse(parts: list[str]) -> None:
    """Four or more `/`-separated parts are always refused."""
    with pytest.raises(ConfigError):
        parse_locality("/".join(parts))


def test_client_tls_needs_something_to_verify_or_present() -> None:
    """ClientTls without any file, or a certificate without its key, is a ConfigError."""
    with pytest.raises(ConfigError):
        ClientTls()
    with pytest.raises(ConfigError):
        ClientTls(ca_file="ca.pem", cert_file="c.pem")


@pytest.mark.envoy
@pytest.mark.parametrize(
    "xds", [("--xds", "127.0.0.1:18000"), ("--xds", "a:1", "--xds", "b:1", "--xds", "[::1]:2")]
)
def test_real_envoy_validates_the_tls_bootstrap(tmp_path: Path, xds: tuple[str, ...]) -> None:
    """`envoy --mode validate` accepts the mutual-TLS bootstrap with a locality (the files
    exist: Envoy reads them when validating)."""
    files = make_tls_files(tmp_path / "certs")
    tls = ("--tls-ca", str(files.ca), "--tls-cert", str(files.client_cert),
           "--tls-key", str(files.client_key))  # fmt: skip
    path = tmp_path / "bootstrap.json"
    doc = _run("envoy", "--node-id", "n", *xds, *tls, "--locality", "eu/eu-a", "--admin-port", "0")
    path.write_text(json.dumps(doc))
    done = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"configuration '{path}' OK" in done.stdout
