"""`xdscp serve --config FILE` as users run it: a subprocess, its admin port, its exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.cluster.v3 import cds_pb2_grpc
from envoy.service.discovery.v3 import discovery_pb2

from tests.harness.certs import make_tls_files
from tests.harness.cli import child_env
from tests.harness.files import rewrite
from tests.harness.serve import LogEvents, get_json
from xdscp.cache import TypeUrl
from xdscp.testing import free_port, wait_until

CONFIG = """\
xds: {address: "127.0.0.1:%(xds)d"}
admin: {address: "127.0.0.1:%(file_admin)d"}   # the environment overrides this one
sources:
  static:
    services:
      web:
        policy: {lb: weighted_round_robin}
        endpoints:
          - {address: 10.0.0.1, port: 80}
          - address: 10.0.0.2
            port: 80
            weight: %(weight)s
"""


def _serve(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], LogEvents]:
    """`xdscp serve --config`, and its log events as it writes them."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    return proc, LogEvents(proc.stderr)


def _stop(proc: subprocess.Popen[str], logs: LogEvents) -> str:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    return logs.text()


def test_config_file_serves_its_services_reloads_them_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """The file's static service is served (admin /debug/resources); the admin address comes
    from the environment, over the file; an edit of the services is applied, a bad edit keeps
    the last good ones with the line and field logged; SIGTERM exits 0."""
    path = tmp_path / "xdscp.yaml"
    ports = {"xds": free_port(), "file_admin": free_port()}
    path.write_text(CONFIG % {**ports, "weight": 1})
    admin = free_port()
    proc, logs = _serve(path, child_env(XDSCP_ADMIN__ADDRESS=f"127.0.0.1:{admin}"))
    base = f"http://127.0.0.1:{admin}"
    try:
        wait_until(lambda: get_json(f"{base}/readyz")[0] == 200)
        first = get_json(f"{base}/debug/resources")[1]["envoy"]
        assert set(first["Cluster"]) == {"web"}
        assert set(first["ClusterLoadAssignment"]) == {"web"}
        rewrite(path, CONFIG % {**ports, "weight": 5})
        wait_until(lambda: get_json(f"{base}/debug/resources")[1]["envoy"] != first)
        second = get_json(f"{base}/debug/resources")[1]["envoy"]
        assert second["ClusterLoadAssignment"] != first["ClusterLoadAssignment"]
        rewrite(path, CONFIG % {**ports, "weight": 0})
        logs.wait("static_services_invalid")  # the bad edit has been read and refused
        assert get_json(f"{base}/debug/resources")[1]["envoy"] == second
        assert get_json(f"{base}/readyz")[0] == 200
    finally:
        err = _stop(proc, logs)
    assert proc.returncode == 0, err
    assert f"{path}:12: sources.static.services.web.endpoints[1].weight: must be in" in err
    assert "static_services_invalid" in err
    assert "control_plane_stopped" in err


def test_a_bad_config_file_exits_with_the_line_and_field(tmp_path: Path) -> None:
    """A file that does not validate stops serve before it listens: exit 1, and stderr names
    the file, line and field; a bad override names the variable; no source at all: exit 2."""
    path = tmp_path / "xdscp.yaml"
    path.write_text(CONFIG % {"xds": free_port(), "file_admin": free_port(), "weight": 0})
    done = subprocess.run(
        [sys.executable, "-m", "xdscp", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False, env=child_env(),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: {path}:12: sources.static.services.web.endpoints[1].weight: "
        "must be in [1, 4294967295], got 0"
    )
    path.write_text(CONFIG % {"xds": free_port(), "file_admin": free_port(), "weight": 1})
    done = subprocess.run(
        [sys.executable, "-m", "xdscp", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
        env=child_env(XDSCP_XDS__GROUP_BY="zone"),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: XDSCP_XDS__GROUP_BY: xds.group_by: "
        "node grouping must be kind, cluster, id or metadata:KEY, got 'zone'"
    )
    path.write_text("xds: {address: 127.0.0.1:0}\n")
    done = subprocess.run(
        [sys.executable, "-m", "xdscp", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False, env=child_env(),
    )  # fmt: skip
    assert done.returncode == 2
    assert "--config FILE with a sources: section" in done.stderr


def test_xds_mutual_tls_from_the_config_file(tmp_path: Path) -> None:
    """`xds.tls` with a client CA (paths relative to the file): a client with a signed
    certificate is served the file's cluster, one without a certificate is refused."""
    files = make_tls_files(tmp_path / "certs")
    xds, admin = free_port(), free_port()
    path = tmp_path / "xdscp.yaml"
    path.write_text(
        f"xds:\n  address: 127.0.0.1:{xds}\n  tls:\n    cert: certs/{files.server_cert.name}\n"
        f"    key: certs/{files.server_key.name}\n    client_ca: certs/{files.ca.name}\n"
        f"admin: {{address: 127.0.0.1:{admin}}}\n"
        "sources: {static: {services: {web: {endpoints: [{address: 10.0.0.1, port: 80}]}}}}\n"
    )
    proc, logs = _serve(path, child_env())
    request = discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id="tls", user_agent_name="envoy"), type_url=TypeUrl.CLUSTER
    )
    ca = files.ca.read_bytes()
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{admin}/readyz")[0] == 200)
        signed = grpc.ssl_channel_credentials(
            ca, files.client_key.read_bytes(), files.client_cert.read_bytes()
        )
        with grpc.secure_channel(f"127.0.0.1:{xds}", signed) as channel:
            stub = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel)
            responses = stub.StreamClusters(iter([request]), timeout=10)
            assert len(next(responses).resources) == 1
            responses.cancel()
        with grpc.secure_channel(f"127.0.0.1:{xds}", grpc.ssl_channel_credentials(ca)) as channel:
            stub = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel)
            try:
                next(stub.StreamClusters(iter([request]), timeout=5))
                refused = None
            except grpc.RpcError as error:
                refused = error.code()
            assert refused == grpc.StatusCode.UNAVAILABLE
    finally:
        err = _stop(proc, logs)
    assert proc.returncode == 0, err
