"""TLS with client certificates and user/password auth, with a CA made in the test."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.certs import make_tls_files
from tests.integration.etcd.helpers import ROOT, endpoint_json
from xdscp.errors import EtcdAuthError, EtcdUnavailableError
from xdscp.etcd import EtcdClient
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, running, wait_for

pytest.importorskip("cryptography")
pytestmark = pytest.mark.etcd


def _etcdctl(server: EtcdServer, *args: str) -> None:
    assert server.tls is not None
    tls = server.tls
    etcdctl = str(Path(server.binary).with_name("etcdctl"))
    subprocess.run(
        [
            etcdctl, f"--endpoints={server.url}", f"--cacert={tls.ca}",
            f"--cert={tls.client_cert}", f"--key={tls.client_key}", *args,
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


@pytest.fixture
def secure_etcd(etcd_bin: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """etcd over TLS with client-cert auth, users enabled, and 1 s auth tokens."""
    server = EtcdServer(
        etcd_bin, tmp_path / "data", tls=make_tls_files(tmp_path / "tls"),
        extra_args=("--auth-token-ttl=1",),
    )  # fmt: skip
    try:
        server.start_fresh()
        _etcdctl(server, "user", "add", "root", "--new-user-password=s3cret")
        _etcdctl(server, "user", "grant-role", "root", "root")
        _etcdctl(server, "auth", "enable")
        yield server
    finally:
        server.stop()


async def test_tls_and_auth_with_token_refresh(secure_etcd: EtcdServer) -> None:
    """Reads, writes and the registry watch work over TLS+auth, across token expiry/restart."""
    config = secure_etcd.config(username="root", password="s3cret")
    async with EtcdClient(config) as client:
        refreshes: list[None] = []
        forget = client.forget_token
        client.forget_token = lambda: (refreshes.append(None), forget())[1]  # type: ignore[method-assign]
        await client.put(f"{ROOT}api/1".encode(), endpoint_json("10.0.0.1", 80))
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder):
            await wait_for(lambda: recorder.last == {"api": ["10.0.0.1:80"]})
            await asyncio.sleep(2.5)  # the 1 s token has expired
            await client.put(f"{ROOT}api/2".encode(), endpoint_json("10.0.0.2", 80))
            await wait_for(lambda: len(recorder.last.get("api", [])) == 2)
            assert refreshes  # the expired token was replaced
            secure_etcd.kill()  # simple tokens do not survive a restart
            secure_etcd.start()
            await client.put(f"{ROOT}api/3".encode(), endpoint_json("10.0.0.3", 80))
            await wait_for(lambda: len(recorder.last.get("api", [])) == 3)


async def test_wrong_password_and_missing_client_cert_are_refused(secure_etcd: EtcdServer) -> None:
    """Bad credentials give EtcdError; no client certificate cannot connect at all."""
    async with EtcdClient(secure_etcd.config(username="root", password="wrong")) as client:
        with pytest.raises(EtcdAuthError, match="authentication failed"):
            await client.get(b"/x")
    assert secure_etcd.tls is not None
    no_cert = secure_etcd.config(
        username="root", password="s3cret", cert_file=None, key_file=None,
        request_timeout=1.0, connect_timeout=0.3,
    )  # fmt: skip
    async with EtcdClient(no_cert) as client:
        with pytest.raises(EtcdUnavailableError):
            await client.get(b"/x")


async def test_wrong_password_is_named_in_readiness(secure_etcd: EtcdServer) -> None:
    """A registry that cannot log in is not ready, and `/readyz`'s reason says why
    (the cause used to be in the log alone)."""
    config = secure_etcd.config(username="root", password="wrong")
    async with EtcdClient(config) as client:
        source = EtcdRegistrySource(client, min_interval=0.0)
        plane = build_plane(
            ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)), sources=[source]
        )
        await plane.start()
        try:
            await wait_for(lambda: source.last_error is not None)
            ready, reason = plane.view.readiness()
            assert not ready
            assert reason.startswith("waiting for sources: etcd (")
            assert "authentication failed" in reason
        finally:
            await plane.stop()
