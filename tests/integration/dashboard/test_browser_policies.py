"""The dashboard in a real browser (chromium, Playwright) on a running `xdscp serve` whose
services set every policy part at once (`tests.harness.policies`, built from the model), with
a real Envoy accepting them: the first paint says "loading…", every policy field is shown with
its value, a dead etcd is named in a banner (and `/readyz` says `degraded`, still 200), an
API answering 500 is said on the page instead of "No services yet", and a page whose server
stops says so and marks its data stale."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.paths import ROOT
from tests.harness.policies import covering_policies
from tests.harness.serve import Serve, get_json, until
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.etcd import EtcdClient
from xdscp.procs.envoy import EnvoyProcess

pytestmark = [pytest.mark.etcd, pytest.mark.envoy, pytest.mark.browser]

POLICIES = {f"full-{i}": policy for i, policy in enumerate(covering_policies())}
ADDRESSES = ("10.0.0.1", "10.0.0.2")
NODE = "envoy-every-policy"
SCREENSHOT = ROOT / "build" / "dashboard-policies.png"


def shown(value: Any) -> str:
    """A policy value as the page writes it (JavaScript's `String`, lists joined)."""
    if value is None:
        return "off"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def leaves(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every field of a policy's mapping form, nested ones as `outer.inner`."""
    found: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            found |= leaves(value, f"{prefix}{key}.")
        else:
            found[prefix + key] = value
    return found


async def _register(client: EtcdClient) -> None:
    for name, policy in POLICIES.items():
        await client.put(
            f"/xdscp/policies/{name}".encode(), json.dumps(policy.to_mapping()).encode()
        )
        for index, address in enumerate(ADDRESSES, 1):
            value = {"address": address, "port": 80, "weight": index}
            await client.put(
                f"/xdscp/services/{name}/{address}".encode(), json.dumps(value).encode()
            )


def _served(value: dict[str, Any]) -> bool:
    policies = {s["name"]: s["policy"] for s in value["services"] if len(s["endpoints"]) == 2}
    return policies == {name: p.to_mapping() for name, p in POLICIES.items()}


def _envoy_accepts(nodes: list[dict[str, Any]]) -> bool:
    node = next((n for n in nodes if n["node"] == NODE), None)
    assert node is None or not node.get("last_nack"), node
    return node is not None and all(
        node["types"].get(t, {}).get("in_sync") for t in ("Cluster", "ClusterLoadAssignment")
    )


async def _first_paint_says_loading(browser: Any, base: str) -> Any:
    """Hold /api/events: what the page shows before any data is "loading…"."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Any) -> None:
        held.set()
        await release.wait()
        await route.continue_()

    await page.route("**/api/events", hold)
    await page.goto(base + "/")
    await asyncio.wait_for(held.wait(), 10)
    for selector in ("#services", "#nodes tbody", "#summary"):
        assert await page.inner_text(selector) == "loading…", selector
    release.set()
    return page


async def _every_field_is_shown(page: Any) -> None:
    for name, policy in POLICIES.items():
        card = f'[data-service="{name}"]'
        await page.wait_for_selector(f"{card} [data-split-endpoint]")
        for path, value in leaves(policy.to_mapping()).items():
            cell = await page.query_selector(f'{card} [data-policy-field="{path}"]')
            assert cell is not None, (name, path)
            assert await cell.text_content() == shown(value), (name, path)


async def test_every_policy_part_shown_and_failures_said(
    etcd_server: EtcdServer, serve: Serve, browser: Any, tmp_path: Path
) -> None:
    """Every field of every part, on the page; then a dead etcd, a failing API and a stopped
    server, each said on the page."""
    async with EtcdClient(etcd_server.config()) as client:
        await _register(client)
    await until(f"{serve.base}/api/services", _served)
    options = EnvoyBootstrapOptions(
        node_id=NODE, servers=(XdsServer("127.0.0.1", serve.xds),), admin_port=0
    )
    envoy = EnvoyProcess(envoy_bootstrap(options), tmp_path / "envoy")
    try:
        await asyncio.to_thread(envoy.start)
        await until(f"{serve.base}/api/nodes", _envoy_accepts)
        page = await _first_paint_says_loading(browser, serve.base)
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await _every_field_is_shown(page)
        await _dead_etcd_is_named(page, etcd_server, serve.base)
        assert errors == []
        await page.click(f'[data-service="{next(reversed(POLICIES))}"] summary')
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        await _failing_api_is_said(browser, serve.base)
        await _failed_event_is_said(browser, serve.base)
    finally:
        envoy.stop()
    serve.stop()
    alert = await page.wait_for_selector('[data-alert="api"]')
    assert "does not answer" in await alert.inner_text()
    assert await page.get_attribute("main", "class") == "stale"
    assert await page.query_selector(f'[data-service="{next(iter(POLICIES))}"]') is not None


async def _dead_etcd_is_named(page: Any, etcd_server: EtcdServer, base: str) -> None:
    """etcd stopped: a banner names it, /readyz stays 200 but says degraded, the gauge is 0;
    etcd back: the banner goes."""
    await asyncio.to_thread(etcd_server.stop)
    banner = await page.wait_for_selector('[data-alert="source:etcd"]', timeout=30_000)
    assert "etcd degraded since" in await banner.inner_text()
    status, ready = await asyncio.to_thread(get_json, base + "/readyz")
    assert (status, ready["ready"], ready["status"]) == (200, True, "degraded")
    assert ready["reason"].startswith("etcd degraded since")
    metrics = await asyncio.to_thread(_metrics, base)
    assert 'xdscp_source_up{source="etcd"} 0.0' in metrics
    await asyncio.to_thread(etcd_server.start)
    await page.wait_for_selector('[data-alert="source:etcd"]', state="detached", timeout=30_000)
    assert (await asyncio.to_thread(get_json, base + "/readyz"))[1]["status"] == "ok"


def _metrics(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        return str(response.read().decode())


async def _failing_api_is_said(browser: Any, base: str) -> None:
    """Every /api route answering 500 (as they did for a resilience policy): a fresh page
    says so and shows "loading…", never "No services yet"."""
    page = await browser.new_page()
    error = json.dumps({"error": "internal error (logged)"})
    await page.route(
        "**/api/**",
        lambda route: route.fulfill(status=500, body=error, content_type="application/json"),
    )
    await page.goto(base + "/")
    alert = await page.wait_for_selector('[data-alert="api"]')
    assert "/api/services answers 500 internal error (logged)" in await alert.inner_text()
    assert await page.inner_text("#services") == "loading…"
    await page.close()


async def _failed_event_is_said(browser: Any, base: str) -> None:
    """A `failed` event (a topic the server could not encode): a banner names the topic."""
    page = await browser.new_page()
    failure = json.dumps({"topic": "services", "error": "internal error (logged)"})
    await page.route(
        "**/api/events",
        lambda route: route.fulfill(
            status=200, body=f"event: failed\ndata: {failure}\n\n",
            content_type="text/event-stream",
        ),
    )  # fmt: skip
    await page.goto(base + "/")
    alert = await page.wait_for_selector('[data-alert="failed:services"]')
    assert "could not send services (internal error (logged))" in await alert.inner_text()
    assert await page.inner_text("#services") == "loading…"
    await page.close()
