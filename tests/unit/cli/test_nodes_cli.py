"""`xdscp config` and `xdscp nacks` against a running control plane's admin port."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from xdscp.cli import main
from xdscp.plane import ServeOptions, ServerConfig, build_plane


async def test_config_and_nacks_read_the_admin_json() -> None:
    """No node connected: `nacks` prints an empty history (table and JSON); `config` of an
    unknown node fails with the admin's reason, exit status 1."""
    plane = build_plane(
        ServerConfig(serve=ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)), sources=[]
    )
    await plane.start()
    admin = f"127.0.0.1:{plane.admin.port}"
    runner = CliRunner()
    try:
        table = await asyncio.to_thread(runner.invoke, main, ["nacks", "--admin", admin])
        raw = await asyncio.to_thread(runner.invoke, main, ["nacks", "--json", "--admin", admin])
        missing = await asyncio.to_thread(
            runner.invoke, main, ["config", "envoy-9", "--type", "cluster", "--admin", admin]
        )
    finally:
        await plane.stop()
    assert table.exit_code == 0, table.output
    assert "0 NACK(s)" in table.output
    assert raw.output.strip() == "[]"
    assert missing.exit_code == 1
    assert missing.output == f"Error: no node 'envoy-9': no node is connected to xdscp at {admin}\n"
