"""Each service's routes on the dashboard, in a real browser (chromium, Playwright) on a
running `xdscp serve` reading etcd: the served form (match → targets with weights and
shares, timeout, fault), a target that is not served struck through and its route marked
"not sent", and both following etcd live (the target registers, the routes change)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.paths import ROOT
from tests.harness.serve import Serve, until
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.etcd, pytest.mark.browser]

ROUTES = [
    {"match": {"headers": [{"name": "x-canary", "exact": "1"}]}, "cluster": "web-v2",
     "timeout": "2s"},
    {"match": {"prefix": "/gone/"}, "cluster": "absent"},
    {"match": {"prefix": "/flaky/"}, "split": {"web": 1, "absent": 1},
     "fault": {"abort": {"http_status": 503, "percent": 5}}},
    {"split": {"web": 9, "web-v2": 1}},
]  # fmt: skip
CARD = '[data-service="web"]'
SCREENSHOT = ROOT / "build" / "dashboard-routes.png"


async def _put(client: EtcdClient, key: str, value: Any) -> None:
    await client.put(key.encode(), json.dumps(value).encode())


async def _register(client: EtcdClient, name: str, address: str) -> None:
    await _put(client, f"/xdscp/services/{name}/{address}", {"address": address, "port": 80})


def _routes_served(count: int) -> Any:
    def check(value: dict[str, Any]) -> bool:
        web = next((s for s in value["services"] if s["name"] == "web"), None)
        return web is not None and web["routes"] is not None and len(web["routes"]) == count

    return check


async def _cells(page: Any, index: int) -> list[str]:
    """A route row's cells as shown; the targets cell as its parts joined by " | "."""
    row = await page.wait_for_selector(f'{CARD} tr[data-route="{index}"]')
    cells = []
    for cell in await row.query_selector_all("td"):
        parts = await cell.query_selector_all("span")
        texts = [await part.inner_text() for part in parts] or [await cell.inner_text()]
        cells.append(" | ".join(texts))
    return cells


async def _targets(page: Any, index: int) -> str | None:
    cell = await page.query_selector(f'{CARD} tr[data-route="{index}"] [data-route-targets]')
    return None if cell is None else await cell.get_attribute("data-route-targets")


async def _asked(page: Any, path: str, headers: str) -> tuple[str, str]:
    """Ask the card's route box: the row it marks and its answer."""
    answer = await page.query_selector(f"{CARD} [data-route-answer]")
    await answer.evaluate("(node) => { node.textContent = ''; }")
    await page.fill(f"{CARD} [data-route-path]", path)
    await page.fill(f"{CARD} [data-route-headers]", headers)
    await page.click(f"{CARD} .route-lookup button")
    await page.wait_for_function("(node) => node.textContent !== ''", arg=answer)
    return await answer.get_attribute("data-taken") or "", await answer.inner_text()


async def test_routes_shown_and_followed_live(
    etcd_server: EtcdServer, serve: Serve, browser: Any
) -> None:
    """The routes table as served; the absent target appears once it registers; new routes
    replace the table."""
    async with EtcdClient(etcd_server.config()) as client:
        await _register(client, "web", "10.0.0.1")
        await _register(client, "web-v2", "10.0.1.1")
        await _put(client, "/xdscp/routes/web", {"routes": ROUTES})
        await until(f"{serve.base}/api/services", _routes_served(4))
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(serve.base + "/")
        assert await _cells(page, 0) == ["0", "x-canary exact 1", "web-v2 (100.0 %)", "2s", "—"]
        gone = await _cells(page, 1)
        assert gone[1:3] == ["prefix /gone/", "absent | not sent"]
        assert await page.query_selector(f'{CARD} tr[data-route="1"].unserved') is not None
        flaky = await _cells(page, 2)
        assert flaky[2:] == ["web 1 (100.0 %) | absent", "—", "abort http 503 5 %"]
        assert await _targets(page, 3) == "web:0.9,web-v2:0.1"
        assert (await _cells(page, 3))[1:3] == ["*", "web 9 (90.0 %) | web-v2 1 (10.0 %)"]
        assert await page.query_selector(f'{CARD} tr[data-route="4"]') is None
        assert await page.query_selector('[data-service="web-v2"] table.routes') is None
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        taken, text = await _asked(page, "/FLAKY/x", "")  # prefix matches are case-sensitive
        assert (taken, text) == ("3", "→ #3: web 90.0 %, web-v2 10.0 % · 10.0.0.1:80 90.0 %,"
                                      " 10.0.1.1:80 10.0 %")  # fmt: skip
        assert await _asked(page, "/flaky/x", "") == (
            "2",
            "→ #2: web 100.0 % · 10.0.0.1:80 100.0 %",
        )
        taken_rows = await page.query_selector_all(f"{CARD} tr.taken")
        assert [await row.get_attribute("data-route") for row in taken_rows] == ["2"]
        assert await _asked(page, "/any", "X-Canary:1, x-other:2") == (
            "0", "→ #0: web-v2 100.0 % · 10.0.1.1:80 100.0 %"
        )  # fmt: skip

        await _register(client, "absent", "10.0.2.1")  # the target registers: served
        await page.wait_for_function(
            """() => document.querySelector('[data-service="web"] tr[data-route="2"]'
                 + ' [data-route-targets]')?.dataset.routeTargets === "absent:0.5,web:0.5" """
        )
        assert await page.query_selector(f"{CARD} [data-dropped]") is None

        await _put(client, "/xdscp/routes/web", {"routes": [{"match": {"path": "/v2"},
                                                             "cluster": "web-v2"}]})  # fmt: skip
        await page.wait_for_selector(f'{CARD} tr[data-route="1"] >> text="* (default)"')
        assert (await _cells(page, 0))[1:3] == ["path /v2", "web-v2 (100.0 %)"]
        assert await page.query_selector(f'{CARD} tr[data-route="2"]') is None
        assert errors == []
