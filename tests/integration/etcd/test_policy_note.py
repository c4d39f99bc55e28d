"""`xdscp policy set` notes (on stderr, exit 0) an outlier detection that can eject none of
the service's registered endpoints, and stores the policy anyway."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from tests.fixtures.etcd import EtcdServer
from tests.harness.cli import cli
from xdscp.etcd import EtcdClient

pytestmark = pytest.mark.etcd


async def _register(etcd_server: EtcdServer, count: int) -> None:
    async with EtcdClient(etcd_server.config()) as client:
        for i in range(count):
            value = {"address": f"10.0.0.{i + 1}", "port": 80}
            await client.put(
                f"/xdscp/services/web/10.0.0.{i + 1}:80".encode(), json.dumps(value).encode()
            )


def _policy_set(url: str, *flags: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli(), ["policy", "set", "web", "--lb", "round_robin", *flags, "--etcd", url]
    )
    return result.exit_code, result.stdout, result.stderr


def test_policy_set_notes_a_policy_that_can_eject_no_endpoint(etcd_server: EtcdServer) -> None:
    """3 endpoints and Envoy's default max_ejection_percent (10): a note naming the fix;
    with --always-eject-one-host, or 34 %, or without outlier detection: none."""
    asyncio.run(_register(etcd_server, 3))
    status, out, err = _policy_set(etcd_server.url, "--consecutive-5xx", "3")
    assert status == 0, out + err
    assert "/xdscp/policies/web" in out  # stored
    assert err.strip() == (
        "note: web: outlier_detection: max_ejection_percent 10 lets Envoy eject no host of 3"
        " (one is 33 %): set always_eject_one_host, or max_ejection_percent 34 or more"
    )
    for flags in (
        ("--consecutive-5xx", "3", "--always-eject-one-host"),
        ("--consecutive-5xx", "3", "--max-ejection-percent", "34"),
        (),
    ):
        status, out, err = _policy_set(etcd_server.url, *flags)
        assert (status, err) == (0, ""), flags
