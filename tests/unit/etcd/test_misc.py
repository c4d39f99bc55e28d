"""Client configuration, endpoint parsing, backoff and the generated protobuf code."""

from __future__ import annotations

import pytest

from xdscp.errors import ConfigError
from xdscp.etcd import EtcdConfig, parse_endpoint


def test_endpoint_parsing_accepts_urls_and_host_port() -> None:
    """http/https URLs and bare host:port parse; IPv6 keeps its brackets in the target."""
    assert parse_endpoint("http://10.0.0.1:2379").target == "10.0.0.1:2379"
    assert parse_endpoint("https://etcd.local:2379").secure
    assert not parse_endpoint("127.0.0.1:1").secure
    assert parse_endpoint("127.0.0.1:1", tls=True).secure
    assert parse_endpoint("http://[::1]:2379").target == "[::1]:2379"


@pytest.mark.parametrize("url", ["ftp://h:1", "http://h:99999", "http://h:1/path", "://"])
def test_bad_endpoints_are_config_errors(url: str) -> None:
    """Malformed endpoint URLs raise ConfigError naming the URL."""
    with pytest.raises(ConfigError):
        parse_endpoint(url)


def test_config_requires_pairs() -> None:
    """A username without a password, or a missing TLS file, is rejected."""
    with pytest.raises(ConfigError):
        EtcdConfig(username="u")
    with pytest.raises(ConfigError):
        EtcdConfig(ca_file="/nonexistent/ca.pem")
    with pytest.raises(ConfigError):
        EtcdConfig(endpoints=())


def test_tls_is_on_for_https_or_a_ca() -> None:
    """TLS is used when an endpoint says https."""
    assert EtcdConfig(endpoints=("https://127.0.0.1:1",)).tls
    assert not EtcdConfig(endpoints=("http://127.0.0.1:1",)).tls


def test_committed_generated_code_is_fresh() -> None:
    """The committed xdscp/etcd/_proto matches what `python -m xdscp.etcd.regen` generates."""
    from xdscp.etcd import regen

    generated = regen.generate()
    committed = {
        p.relative_to(regen.OUTPUT_DIR).as_posix(): p.read_bytes()
        for p in regen.OUTPUT_DIR.rglob("*.py")
    }
    stale = sorted(
        k for k in generated.keys() | committed.keys() if generated.get(k) != committed.get(k)
    )
    assert not stale, f"run `make protos`: stale generated files {stale}"


def test_generated_messages_keep_etcd_wire_numbers() -> None:
    """Field numbers and package names match etcd's API (spot checks on the descriptors)."""
    from xdscp.etcd._proto.etcdserverpb import rpc_pb2
    from xdscp.etcd._proto.mvccpb import kv_pb2

    fields = rpc_pb2.WatchResponse.DESCRIPTOR.fields_by_name
    assert fields["events"].number == 11
    assert fields["compact_revision"].number == 5
    assert rpc_pb2.Compare.DESCRIPTOR.fields_by_name["range_end"].number == 64
    assert rpc_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert kv_pb2.KeyValue.DESCRIPTOR.fields_by_name["lease"].number == 6
    assert rpc_pb2.DESCRIPTOR.services_by_name["KV"].full_name == "etcdserverpb.KV"
