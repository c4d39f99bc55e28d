"""A topic the server cannot encode is sent as a `failed` event naming it (and logged); the
stream carries the other topics and stays open, so the page can say what failed."""

from __future__ import annotations

import json
import socket
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from xdscp.admin import AdminServer, ChangeFeed, PredictQuery


class BrokenServices:
    """An `AdminView` whose services hold a value no encoder knows."""

    def services_view(self) -> list[dict[str, Any]]:
        return [{"name": "web", "policy": object()}]

    def nodes_status(self) -> list[dict[str, Any]]:
        return []

    def sources_status(self) -> list[dict[str, Any]]:
        return [{"source": "etcd", "state": "ok", "since": "", "error": None}]

    def readiness(self) -> tuple[bool, str]:
        return True, ""

    def snapshots_status(self) -> dict[str, Any]:
        return {}

    def resources_status(self) -> dict[str, Any]:
        return {}

    def predict(self, query: PredictQuery) -> dict[str, Any] | None:
        return None

    def config_dump(self, node_id: str, type_name: str = "") -> dict[str, Any] | None:
        return None

    def nack_history(self, node_id: str | None = None) -> list[dict[str, str]]:
        return []

    def health_status(self) -> dict[str, Any]:
        return {}

    def weights_status(self) -> dict[str, Any]:
        return {}


async def test_a_topic_that_cannot_be_encoded_is_a_failed_event() -> None:
    """`failed` for services (with the topic), then nodes and sources as usual; the route
    /api/services itself answers 500 with a JSON error."""
    server = AdminServer(
        "127.0.0.1",
        0,
        metrics_registry=CollectorRegistry(),
        view=BrokenServices(),
        feed=ChangeFeed(),  # type: ignore[arg-type]
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    events: list[tuple[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/api/services") as response:
                assert (response.status, await response.json()) == (
                    500, {"error": "internal error (logged)"},
                )  # fmt: skip
            async with session.get(base + "/api/events") as response:
                name = ""
                async for line in response.content:
                    text = line.decode().rstrip("\n")
                    if text.startswith("event: "):
                        name = text.removeprefix("event: ")
                    elif text.startswith("data: "):
                        events.append((name, json.loads(text.removeprefix("data: "))))
                    if len(events) == 3:
                        break
    finally:
        await server.stop()
    assert events[0] == ("failed", {"topic": "services", "error": "internal error (logged)"})
    assert [name for name, _ in events[1:]] == ["nodes", "sources"]


async def test_a_failed_bind_cleans_up_what_it_set_up() -> None:
    """The admin port in use: `start` raises, and the aiohttp runner it set up is cleaned up
    (the app's cleanup hooks ran), not left behind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = AdminServer(
            "127.0.0.1",
            taken.getsockname()[1],
            metrics_registry=CollectorRegistry(),
            view=BrokenServices(),
            feed=ChangeFeed(),  # type: ignore[arg-type]
        )
        cleaned: list[bool] = []

        async def note(_app: object) -> None:
            cleaned.append(True)

        server.app.on_cleanup.append(note)
        with pytest.raises(OSError, match="in use"):
            await server.start()
    assert cleaned == [True]
