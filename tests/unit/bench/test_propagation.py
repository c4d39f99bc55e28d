"""The propagation bench's parts that decide its figures: markers, exports, configs, stats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from envoy.config.core.v3 import address_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench.propagate import gopeer, report, sovereign
from bench.propagate.changes import SERVICE, backend_of, endpoint_key, registration_value
from bench.propagate.probe import port_marker
from xdscp.cache import Snapshot, TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.procs import find_binary
from xdscp.translate import TranslateOptions, translate

OPTIONS = TranslateOptions(listener_address="127.0.0.1", listener_port=18080)


def snapshot_of(port: int) -> Snapshot:
    """What xdscp serves when `bench` has one endpoint on 127.0.0.1:`port`."""
    services = {SERVICE: Service(SERVICE, (Endpoint("127.0.0.1", port),))}
    return translate(services, OPTIONS).snapshot


@pytest.mark.parametrize("port", [1, 127, 128, 8080, 40000, 65535])
def test_port_marker_is_how_protobuf_writes_the_port(port: int) -> None:
    """The probe recognises a change's CLA by these bytes: they must be protobuf's own."""
    encoded = address_pb2.SocketAddress(port_value=port).SerializeToString()
    assert encoded == port_marker(port)


def test_marker_found_in_the_translated_cla_only_for_its_port() -> None:
    """The CLA xdscp builds holds its endpoint's marker and not another backend's."""
    cla = snapshot_of(40001).resources[TypeUrl.ENDPOINT][SERVICE].any_bytes
    assert port_marker(40001) in cla
    assert port_marker(40002) not in cla


def test_changes_rotate_backends_and_write_registrations() -> None:
    """Consecutive changes point at different backends; values are valid registrations."""
    assert [backend_of(c, 4) for c in range(6)] == [0, 1, 2, 3, 0, 1]
    assert endpoint_key(7) == b"/xdscp/services/bench/e7"
    value = json.loads(registration_value(40001))
    assert (value["address"], value["port"]) == ("127.0.0.1", 40001)


def test_summary_derives_the_breakdown_and_percentiles() -> None:
    """p50/p99 per measure, and per-change differences between stages."""
    samples = [
        {
            "watch_ms": float(w),
            "publish_ms": w + 0.5,
            "snapshot_ms": w + 1.0,
            "ack_ms": w + 3.0,
            "first_ms": w + 4.0,
        }
        for w in range(1, 101)
    ]
    summary = report.summarize("xdscp", samples)
    assert summary["stats"]["watch_ms"]["p50"] == 51.0  # nearest rank over 1..100
    assert summary["stats"]["watch_ms"]["p99"] == 99.0
    assert summary["stats"]["watch_to_publish_ms"]["p99"] == pytest.approx(0.5)
    assert summary["stats"]["publish_to_snapshot_ms"]["p50"] == pytest.approx(0.5)
    assert summary["stats"]["ack_to_first_ms"]["p50"] == pytest.approx(1.0)
    assert "push_ms" not in summary["stats"]


def test_verdicts_compare_with_the_targets() -> None:
    """Added p50 3.5 ms misses the 3 ms target; sovereign 100x slower holds the x10 target."""
    xdscp = report.summarize("xdscp", [{"added_ms": 3.5, "first_ms": 10.0}])
    slow = report.summarize("sovereign", [{"first_ms": 1000.0}])
    text = report.verdicts([xdscp, slow])
    assert "added p50 3.50 ms (target <= 3.0) MISSED" in text
    assert "(x100; target >= x10) holds" in text


def test_go_export_holds_the_same_resources(tmp_path: Path) -> None:
    """The go peer's files carry xdscp's resources byte for byte, with xdscp's versions."""
    snapshots = {0: snapshot_of(40000), 1: snapshot_of(40001)}
    gopeer.export(snapshots, tmp_path)
    eds = discovery_pb2.DiscoveryResponse.FromString((tmp_path / "eds-1.pb").read_bytes())
    expected = snapshots[1].resources[TypeUrl.ENDPOINT][SERVICE].any_bytes
    assert [r.SerializeToString() for r in eds.resources] == [expected]
    assert eds.version_info == snapshots[1].versions[TypeUrl.ENDPOINT]
    assert {p.name for p in tmp_path.iterdir()} == {
        "cds.pb", "lds.pb", "rds.pb", "eds-0.pb", "eds-1.pb",
    }  # fmt: skip


def test_go_export_refuses_changes_beyond_endpoints(tmp_path: Path) -> None:
    """The go peer serves one Cluster/Listener/Route set: a change altering them is refused."""
    other = translate({"other": Service("other", (Endpoint("127.0.0.1", 1),))}, OPTIONS).snapshot
    with pytest.raises(RuntimeError, match="more than endpoints"):
        gopeer.export({0: snapshot_of(40000), 1: other}, tmp_path)


def test_sovereign_templates_render_xdscp_resources(tmp_path: Path) -> None:
    """sovereign's source holds xdscp's CLA as JSON; the cluster's EDS polls sovereign."""
    snapshot = snapshot_of(40001)
    config = json.loads(sovereign.write_config(tmp_path, snapshot, 1, 1.0).read_text())
    assert config["source_config"] == {"refresh_rate": 1}
    sovereign.write_instances(tmp_path, snapshot)
    (instance,) = json.loads((tmp_path / "instances.json").read_text())
    endpoint = instance["cla"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == 40001
    cluster = json.loads((tmp_path / "clusters.yaml").read_text().split("\n")[1])
    eds = cluster["resources"][0]["eds_cluster_config"]["eds_config"]
    assert eds["api_config_source"]["api_type"] == "REST"


@pytest.mark.envoy
def test_sovereign_bootstrap_is_valid_for_envoy(tmp_path: Path) -> None:
    """A real Envoy accepts the REST bootstrap with xdscp's listener inlined."""
    bootstrap = sovereign.bootstrap(snapshot_of(40001), 18081, 1.0)
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    checked = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
