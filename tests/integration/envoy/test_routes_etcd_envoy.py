"""The user's path for routes: `xdscp route set` writes etcd, xdscp watches it, a real Envoy
routes by it; a bad table is refused before etcd; `xdscp route delete` undoes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from click.testing import CliRunner, Result

from tests.fixtures.etcd import EtcdServer
from tests.harness.plane import EnvoyStarter, Plane, aget, envoys_in_sync, running_plane
from xdscp.cli.routes import route_group
from xdscp.demo.backend import Backend
from xdscp.etcd import EtcdClient
from xdscp.registry.registration import build_registration, register
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.etcd]
HEADER_ROUTE = [{"match": {"path": "/canary"}, "cluster": "web-v2"}]


@pytest.fixture
async def plane(etcd_server: EtcdServer) -> AsyncIterator[Plane]:
    """A control plane watching the etcd registry."""
    async with EtcdClient(etcd_server.config()) as etcd:
        source = EtcdRegistrySource(etcd, min_interval=0.0)
        async with running_plane(source) as running:
            yield running


async def _route(etcd_server: EtcdServer, *args: str) -> Result:
    urls = [arg for url in etcd_server.config().endpoints for arg in ("--etcd", url)]
    return await asyncio.to_thread(CliRunner().invoke, route_group, [*args, *urls])


async def _who(plane: Plane, path: str) -> set[str]:
    return {(await aget(plane.listener_port, "web", path))[1] for _ in range(20)}


async def test_route_set_in_etcd_routes_envoy_and_delete_undoes_it(
    plane: Plane, etcd_server: EtcdServer, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """web on b0, b1 and web-v2 on b2 registered; `route set web` sends `/canary` to web-v2
    (only b2 answers it, other paths stay on web), every type ACKed; a bad table exits 2
    and changes nothing; `route delete web` sends `/canary` to web again."""
    async with EtcdClient(etcd_server.config()) as client, contextlib.AsyncExitStack() as stack:
        for name, backend in (("web", backends[0]), ("web", backends[1]), ("web-v2", backends[2])):
            registration = build_registration(name, "127.0.0.1", backend.http_port)
            await stack.enter_async_context(register(client, registration, ttl=5))
        await envoy()
        done = await _route(etcd_server, "set", "web", "--json", json.dumps(HEADER_ROUTE))
        assert done.exit_code == 0, done.output

        async def routed() -> bool:
            return await _who(plane, "/canary") == {"b2"}

        await wait_for(routed, 30.0, interval=0.05, what="/canary routed to web-v2")
        assert await _who(plane, "/other") <= {"b0", "b1"}
        await envoys_in_sync(plane)
        bad = await _route(etcd_server, "set", "web", "--json", '[{"split": {"web": 0}}]')
        assert bad.exit_code == 2
        assert "routes[0].split" in bad.output
        assert await _who(plane, "/canary") == {"b2"}
        gone = await _route(etcd_server, "delete", "web")
        assert gone.exit_code == 0, gone.output

        async def back() -> bool:
            return await _who(plane, "/canary") <= {"b0", "b1"}

        await wait_for(back, 30.0, interval=0.05, what="/canary back on web")
        await envoys_in_sync(plane)
