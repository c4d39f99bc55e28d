"""The dashboard in a real headless browser (Debian's chromium driven by Playwright) against
a running `xdscp serve` with a real etcd and a real Envoy: it loads with no console errors,
shows the services and nodes, a newly registered endpoint appears without a reload within
1 s, the predicted split is `xdscp simulate`'s, and the lookup box names the endpoint the
reference balancer picks. A screenshot is written to build/dashboard.png."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.fixtures.etcd import EtcdServer
from tests.harness.paths import ROOT
from tests.harness.serve import Serve, until
from xdscp.balancer import build_balancer, route_request
from xdscp.cache import TypeUrl
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.etcd import EtcdClient
from xdscp.model import BalancingPolicy, Endpoint, HashOn, Service
from xdscp.procs.envoy import EnvoyProcess
from xdscp.translate import client_resources

pytestmark = [pytest.mark.etcd, pytest.mark.envoy, pytest.mark.browser]

SCREENSHOT = ROOT / "build" / "dashboard.png"
POLICY = {"lb": "maglev", "hash_on": ["header:x-user"]}
WEIGHTS = {"10.0.0.1": 1, "10.0.0.2": 2, "10.0.0.3": 7}
NEW = ("10.0.0.4", 3)
NODE = "envoy-dashboard"
NACKER = "nacking-client"
NACK_ERROR = "deliberate: cluster web rejected by the test"
# Resolves with Date.now() when `selector` matches: a MutationObserver, not polling.
# Installs, synchronously, an observer that notes when `selector` first matches; once this
# evaluate has returned, the observer is in place. True if it matches already.
WATCH = """selector => {
  window.__appeared = new Promise(resolve => {
    const check = () => document.querySelector(selector) && (resolve(Date.now()), true);
    if (!check()) new MutationObserver((_, obs) => check() && obs.disconnect())
      .observe(document.body, {childList: true, subtree: true});
  });
  return document.querySelector(selector) !== null;
}"""
APPEARED = "() => window.__appeared"  # when the watched selector matched (ms since the epoch)


def _simulate(endpoints: dict[str, int]) -> dict[str, int]:
    """`xdscp simulate` for the service's policy and endpoints: endpoint → requests."""
    command = [sys.executable, "-m", "xdscp", "simulate", "--policy", POLICY["lb"],
               "--hash-on", POLICY["hash_on"][0], "--seed", "0", "--requests", "10000"]  # fmt: skip
    for address, weight in endpoints.items():
        command += ["--endpoint", f"{address}:80:{weight}"]
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    rows = [line.split("│") for line in out.splitlines() if line.count("│") >= 5]
    return {r[1].strip(): int(r[2]) for r in rows if r[1].strip().endswith(":80")}


async def _shown_split(page: Any) -> dict[str, int]:
    rows = await page.query_selector_all('[data-service="web"] [data-split-endpoint]')
    return {
        await r.get_attribute("data-split-endpoint"): int(await r.get_attribute("data-requests"))
        for r in rows
    }


async def _register(client: EtcdClient, address: str, weight: int) -> None:
    value = {"address": address, "port": 80, "weight": weight}
    await client.put(f"/xdscp/services/web/{address}".encode(), json.dumps(value).encode())


async def test_dashboard_in_a_real_browser(
    etcd_server: EtcdServer, serve: Serve, browser: Any, tmp_path: Path
) -> None:
    """The page shows web (maglev on x-user, three endpoints), the connected Envoy in sync
    and a client's NACK with its error; registering a fourth endpoint updates it live (the
    latency is printed); the split and the lookup box agree with `xdscp simulate` and the
    reference balancer."""
    base, xds = serve.base, serve.xds
    async with EtcdClient(etcd_server.config()) as client:
        await client.put(b"/xdscp/policies/web", json.dumps(POLICY).encode())
        for address, weight in WEIGHTS.items():
            await _register(client, address, weight)
        await until(f"{base}/api/services", _three_endpoints)
        bootstrap = envoy_bootstrap(
            EnvoyBootstrapOptions(
                node_id=NODE, servers=(XdsServer("127.0.0.1", xds),), admin_port=0
            )
        )
        envoy = EnvoyProcess(bootstrap, tmp_path / "envoy")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{xds}")
        try:
            await asyncio.to_thread(envoy.start)
            await until(f"{base}/api/nodes", lambda nodes: _in_sync(nodes, "Cluster"))
            call = await _nack(channel)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base + "/")
            await page.wait_for_selector('[data-service="web"] [data-split-endpoint="10.0.0.3:80"]')
            await page.wait_for_selector(f'[data-node="{NODE}"] .sync.yes[data-type="Cluster"]')
            assert await page.get_attribute(
                '[data-service="web"] [data-policy]', "data-policy"
            ) == ("maglev")
            assert await _shown_split(page) == await asyncio.to_thread(_simulate, WEIGHTS)
            nack = await page.wait_for_selector(f'[data-node="{NACKER}"] .nack')
            assert NACK_ERROR in await nack.inner_text()
            assert await page.query_selector(f'[data-node="{NACKER}"] .sync.no') is not None

            await _appears_live(page, client)
            grown = {**WEIGHTS, NEW[0]: NEW[1]}
            await page.wait_for_selector(
                f'[data-service="web"] [data-split-endpoint="{NEW[0]}:80"]'
            )
            assert await _shown_split(page) == await asyncio.to_thread(_simulate, grown)

            await page.fill('[data-service="web"] input[data-hash-on="header:x-user"]', "alice")
            await page.click('[data-service="web"] .lookup button')
            answer = await page.wait_for_selector('[data-service="web"] .answer[data-endpoint]')
            assert await answer.get_attribute("data-endpoint") == _reference_pick(grown, "alice")

            weight = await page.evaluate(
                "performance.getEntriesByType('resource').concat("
                "performance.getEntriesByType('navigation'))"
                ".filter(e => !e.name.includes('/api/'))"
                ".reduce((sum, e) => sum + e.encodedBodySize, 0)"
            )
            print(f"page weight (HTML, CSS, JS): {weight / 1024:.1f} KiB")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert errors == []
            call.cancel()
        finally:
            await channel.close()
            envoy.stop()


async def _appears_live(page: Any, client: EtcdClient) -> None:
    """Register the new endpoint; it must be on the page (no reload) within 1 s of the PUT."""
    selector = f'[data-service="web"] [data-endpoint="{NEW[0]}:80"]'
    assert not await page.evaluate(WATCH, selector)  # the observer is installed
    put_at = time.time()
    await _register(client, *NEW)
    latency = (await asyncio.wait_for(page.evaluate(APPEARED), 10)) / 1000 - put_at
    print(f"\nnew endpoint on the page {1000 * latency:.0f} ms after the etcd put")
    assert latency <= 1.0


def _three_endpoints(value: dict[str, Any]) -> bool:
    return [len(s["endpoints"]) for s in value["services"]] == [3]


async def _nack(channel: grpc.aio.Channel) -> Any:
    """An ADS client that NACKs its first Cluster response (the stream stays open)."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    node = base_pb2.Node(id=NACKER, user_agent_name="envoy")
    await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=TypeUrl.CLUSTER))
    response = await call.read()
    nack = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER, response_nonce=response.nonce)
    nack.error_detail.code = 3
    nack.error_detail.message = NACK_ERROR
    await call.write(nack)
    return call


def _in_sync(nodes: list[dict[str, Any]], type_name: str) -> bool:
    return any(n["node"] == NODE and n["types"].get(type_name, {}).get("in_sync") for n in nodes)


def _reference_pick(endpoints: dict[str, int], user: str) -> str | None:
    """The endpoint the reference balancer picks for `x-user: user` on these endpoints."""
    service = Service(
        "web",
        tuple(Endpoint(address, 80, weight=weight) for address, weight in endpoints.items()),
        BalancingPolicy(lb="maglev", hash_on=(HashOn.parse("header:x-user"),)),
    )
    lb = build_balancer(*client_resources()(service), rng=random.Random(0))
    return route_request(lb, headers={"x-user": user}).endpoint
