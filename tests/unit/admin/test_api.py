"""Every admin route of a running control plane whose services set every policy part at once
(`tests.harness.policies`: a new model field is included without editing this test): no
route fails, the policy reads back as the policy served, and the event stream carries it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.harness.policies import covering_policies, field_paths, set_paths
from xdscp.admin.http import readiness_body
from xdscp.model import BalancingPolicy, Endpoint, Locality, Service
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.registry.schema import parse_policy
from xdscp.sources.memory import MemorySource
from xdscp.testing import wait_for

SERVICES = {
    f"full-{i}": Service(
        f"full-{i}",
        (
            Endpoint("10.0.0.1", 80, weight=2, locality=Locality("r", "a")),
            Endpoint("10.0.0.2", 80, weight=3, locality=Locality("r", "b"), metadata={"k": "v"}),
            Endpoint("10.0.0.3", 80, priority=1, hash_key="three"),
        ),
        policy,
    )
    for i, policy in enumerate(covering_policies())
}
REQUEST = "header=x-user:alice&cookie=session:s1&query=u:1&ip=10.9.9.9"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """A control plane serving the maximal services; its admin base URL."""
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)),
        sources=[MemorySource(SERVICES)],
    )
    await plane.start()
    try:
        await wait_for(lambda: plane.view.readiness()[0])
        yield f"http://127.0.0.1:{plane.admin.port}"
    finally:
        await plane.stop()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json()


def test_the_policies_set_every_field() -> None:
    """Between them the services set every field of the policy and of each of its parts."""
    assert len(SERVICES) >= 2
    covered = set().union(*(set_paths(s.policy, BalancingPolicy()) for s in SERVICES.values()))
    assert field_paths(BalancingPolicy) - covered == set()


async def test_every_route_answers_with_every_policy_part_set(base: str) -> None:
    """Each JSON route (and each service's prediction for Envoy and gRPC, with a request to
    route) answers without a server error."""
    async with aiohttp.ClientSession() as session:
        _, listing = await _get(session, base + "/api")
        routes = [r for r in listing["routes"] if r not in {"/", "/static/", "/api/events"}]
        routes += [
            f"/api/predict?service={name}&client={client}&{REQUEST}"
            for name in SERVICES
            for client in ("envoy", "grpc")
        ]
        for route in routes:
            async with session.get(base + route) as response:
                body = await response.read()
                assert response.status in {200, 400, 404}, (route, body[:300])
                if route != "/metrics":
                    json.loads(body)


async def test_services_and_predictions_carry_the_policy_in_the_model_form(base: str) -> None:
    """/api/services and /api/predict give each policy in its `to_mapping` form, which parses
    back (as etcd's policy keys do) to the very policy served; endpoints carry every field."""
    async with aiohttp.ClientSession() as session:
        status, body = await _get(session, base + "/api/services")
        assert status == 200
        for shown in body["services"]:
            served = SERVICES[shown["name"]]
            assert shown["policy"] == served.policy.to_mapping()
            assert parse_policy(json.dumps(shown["policy"]).encode()) == served.policy
            third = shown["endpoints"][2]
            assert (third["key"], third["priority"], third["hash_key"]) == (
                "10.0.0.3:80",
                1,
                "three",
            )
            assert shown["endpoints"][1]["metadata"] == {"k": "v"}
            status, predicted = await _get(session, f"{base}/api/predict?service={shown['name']}")
            assert status == 200
            assert predicted["policy"] == served.policy.to_mapping()


async def test_the_event_stream_carries_every_topic(base: str) -> None:
    """/api/events opens with `services` (the full policies), `nodes` and `sources`."""
    events: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session, session.get(base + "/api/events") as response:
        event = ""
        async for line in response.content:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text.removeprefix("event: ")
            elif text.startswith("data: "):
                events[event] = json.loads(text.removeprefix("data: "))
            if {"services", "nodes", "sources"} <= events.keys():
                break
    assert "failed" not in events
    policies = {s["name"]: s["policy"] for s in events["services"]["services"]}
    assert policies == {name: s.policy.to_mapping() for name, s in SERVICES.items()}
    assert events["sources"]["sources"][0] | {"since": ""} == {
        "source": "memory", "state": "ok", "since": "", "error": None,
    }  # fmt: skip


def test_readiness_stays_ready_but_says_degraded() -> None:
    """A degraded source after the first snapshot: ready, status `degraded`, the source and
    since when in the reason; before it: not ready."""
    etcd = {"source": "etcd", "state": "degraded", "since": "2026-01-01T00:00:00+00:00",
            "error": "no etcd endpoint reachable"}  # fmt: skip
    body = readiness_body(True, "", [etcd])
    assert (body["ready"], body["status"]) == (True, "degraded")
    assert body["reason"] == (
        "etcd degraded since 2026-01-01T00:00:00+00:00 (no etcd endpoint reachable):"
        " serving its last known services"
    )
    assert readiness_body(False, "waiting for sources: etcd", [etcd])["status"] == "not_ready"
    assert readiness_body(True, "", [{**etcd, "state": "ok"}])["status"] == "ok"
