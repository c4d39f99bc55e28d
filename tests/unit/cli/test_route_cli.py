"""`xdscp route set / get / delete` against a fake etcd: a valid table is stored as given,
a bad one is refused naming the field (nothing written), a target with no endpoint warned."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import click
import pytest
from click.testing import CliRunner, Result

from xdscp.cli.routes import route_group
from xdscp.model import RouteTable
from xdscp.registry import parse_routes
from xdscp.testing import FakeEtcd
from xdscp.testing.etcd_services import ManualClock

ROUTES = [
    {"match": {"headers": [{"name": "x-canary", "present": True}]}, "cluster": "web-v2"},
    {"split": {"web": 90, "web-v2": 10}},
]


@pytest.fixture
async def etcd() -> AsyncIterator[FakeEtcd]:
    """An in-process fake etcd (gRPC on loopback) on a manual clock."""
    async with FakeEtcd(clock=ManualClock()) as fake:
        yield fake


def _stored(etcd: FakeEtcd, key: bytes) -> bytes | None:
    found = etcd.store.range(key)
    return found[0].value if found else None


async def _invoke(etcd: FakeEtcd, *args: str) -> Result:
    group: click.Command = route_group
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, group, [*args, "--etcd", etcd.url])


async def test_set_get_delete_round_trip(etcd: FakeEtcd) -> None:
    """`set --json` stores the table, `get` prints it back, `delete` removes it; a target
    with no registered endpoint gets a warning (the table is stored anyway)."""
    done = await _invoke(etcd, "set", "web", "--json", json.dumps(ROUTES))
    assert done.exit_code == 0, done.output
    assert "/xdscp/routes/web = " in done.stdout
    assert "no endpoint of 'web-v2' is registered" in done.stderr
    value = _stored(etcd, b"/xdscp/routes/web")
    assert value is not None
    assert parse_routes(value) == RouteTable.from_list(ROUTES)
    shown = await _invoke(etcd, "get", "web")
    assert json.loads(shown.stdout) == {
        "service": "web", "stored": True, "routes": RouteTable.from_list(ROUTES).to_list(),
    }  # fmt: skip
    gone = await _invoke(etcd, "delete", "web")
    assert gone.exit_code == 0, gone.output
    assert _stored(etcd, b"/xdscp/routes/web") is None
    again = await _invoke(etcd, "delete", "web")
    assert again.exit_code == 1
    assert "has no stored routes" in again.output


async def test_split_shorthand_is_one_catch_all_route(etcd: FakeEtcd) -> None:
    """`--split web=90,web-v2=10` stores one route sending every request to the split."""
    done = await _invoke(etcd, "set", "web", "--split", "web=90,web-v2=10")
    assert done.exit_code == 0, done.output
    value = _stored(etcd, b"/xdscp/routes/web")
    assert value is not None
    assert parse_routes(value).to_list() == [{"split": {"web": 90, "web-v2": 10}}]


async def test_a_bad_table_is_refused_and_nothing_is_written(etcd: FakeEtcd) -> None:
    """A bad table exits 2 with the field at fault; etcd is left untouched."""
    bad = [{"split": {"web": 0}}]
    done = await _invoke(etcd, "set", "web", "--json", json.dumps(bad))
    assert done.exit_code == 2
    assert "routes[0].split" in done.output
    assert "nothing stored" in done.output
    assert _stored(etcd, b"/xdscp/routes/web") is None
