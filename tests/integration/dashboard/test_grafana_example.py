"""examples/grafana-dashboard.json against a running `xdscp serve` (etcd with a registration,
DNS from dnsmasq, two ADS streams, one ACK and one NACK): every metric a panel selects is on
the scraped /metrics, with the process and build metrics and without `*_created` series."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.fixtures.dnsmasq import DnsmasqServer
from tests.fixtures.etcd import EtcdServer
from tests.harness import grafana
from tests.harness.serve import Serve, until
from xdscp.cache import TypeUrl
from xdscp.etcd import EtcdClient

pytestmark = pytest.mark.etcd

STREAM_SERIES = ("xdscp_acks_total", "xdscp_nacks_total", "xdscp_push_ack_seconds_bucket")
DNS_CONFIG = """dns:
  resolver: {{nameservers: [127.0.0.1], port: {port}, timeout: 2}}
  services:
    - {{service: dns-api, dns_name: api.test., record_type: A, port: 8080}}
"""


@pytest.fixture
def serve_all(
    etcd_server: EtcdServer, dnsmasq_server: DnsmasqServer, tmp_path: Path
) -> Iterator[Serve]:
    """serve with the etcd registry and a DNS source (one name dnsmasq answers)."""
    dnsmasq_server.set_hosts("10.0.3.1 api.test")
    config = tmp_path / "dns.yaml"
    config.write_text(DNS_CONFIG.format(port=dnsmasq_server.port))
    running = Serve(etcd_server.url, "--dns-config", str(config))
    try:
        yield running
    finally:
        running.stop()


async def _answer_each(call: Any, accept: bool) -> None:
    """ACK (or NACK) every response the stream gets: a snapshot that changes again after the
    first response (the DNS source publishing after etcd) makes the first answer stale, and a
    stale nonce is no ACK or NACK."""
    async for response in call:
        answer = discovery_pb2.DiscoveryRequest(
            type_url=TypeUrl.CLUSTER, response_nonce=response.nonce,
            version_info=response.version_info if accept else "",
        )  # fmt: skip
        if not accept:
            answer.error_detail.message = "deliberate NACK"
        await call.write(answer)


async def _streams(channel: grpc.aio.Channel) -> tuple[list[Any], list[asyncio.Task[None]]]:
    """Two ADS streams on Clusters: one ACKs every response, one NACKs every one (kept open)."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    calls: list[Any] = []
    answering: list[asyncio.Task[None]] = []
    for index, accept in enumerate((True, False)):
        call = stub.StreamAggregatedResources()
        node = base_pb2.Node(id=f"grafana-{index}", user_agent_name="envoy")
        await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER))
        answering.append(asyncio.create_task(_answer_each(call, accept)))
        calls.append(call)
    return calls, answering


def _scrape(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        return str(response.read().decode())


async def _scraped_with(base: str, series: tuple[str, ...], limit: float = 30.0) -> str:
    """/metrics once serve has counted `series` (the streams' ACK and NACK)."""
    async with asyncio.timeout(limit):
        while True:
            text = await asyncio.to_thread(_scrape, base)
            if all(re.search(rf"^{name}{{", text, re.MULTILINE) for name in series):
                return text
            await asyncio.sleep(0.05)


async def test_every_panel_metric_is_on_a_running_serve(
    etcd_server: EtcdServer, serve_all: Serve
) -> None:
    """The names the panels select are all scraped; xdscp_build_info is 1 with its versions,
    process and GC metrics are there, and no `*_created` series."""
    async with EtcdClient(etcd_server.config()) as client:
        value = {"address": "10.0.0.1", "port": 80}
        await client.put(b"/xdscp/services/web/1", json.dumps(value).encode())
    await until(f"{serve_all.base}/readyz", lambda body: body["ready"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve_all.xds}") as channel:
        calls, answering = await _streams(channel)
        text = await _scraped_with(serve_all.base, STREAM_SERIES)
        for call in calls:
            call.cancel()
        await asyncio.gather(*answering, return_exceptions=True)
    assert grafana.metric_names(grafana.load()) - grafana.exposed_names(text) == set()
    assert [line for line in text.splitlines() if "_created" in line] == []
    build = re.search(r"^xdscp_build_info\{(.*)\} 1\.0$", text, re.MULTILINE)
    assert build is not None
    labels = dict(re.findall(r'(\w+)="([^"]*)"', build.group(1)))
    assert labels.keys() == {"version", "python", "grpc", "envoy_protos"}
    assert "unknown" not in labels.values()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "python_gc_collections_total", "python_info", 'xdscp_source_up{source="etcd"}',
                 'xdscp_source_up{source="dns"}'):  # fmt: skip
        assert re.search(rf"^{re.escape(name)}[{{ ]", text, re.MULTILINE), name
