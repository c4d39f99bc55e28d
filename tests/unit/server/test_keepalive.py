"""The keepalive contract: the pings the bootstraps xdscp writes make are ones its xDS server
accepts, and a client pinging faster than the server allows is what gets GOAWAY."""

from __future__ import annotations

import asyncio
import json
import struct

import grpc
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from xdscp import keepalive
from xdscp.cli import main
from xdscp.plane import SERVER_OPTIONS

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1
ENHANCE_YOUR_CALM = 0xB


def _option(name: str) -> int:
    values = [value for key, value in SERVER_OPTIONS if key == name]
    assert len(values) == 1, (name, values)
    return int(values[0])


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def _envoy_keepalive(*args: str) -> dict[str, str]:
    result = CliRunner().invoke(main, ["bootstrap", "envoy", "--node-id", "n", *args])
    assert result.exit_code == 0, result.output
    cluster = json.loads(result.output)["static_resources"]["clusters"][0]
    (http,) = cluster["typed_extension_protocol_options"].values()
    keepalive_json: dict[str, str] = http["explicit_http_config"]["http2_protocol_options"][
        "connection_keepalive"
    ]
    return keepalive_json


@given(
    servers=st.lists(st.sampled_from(["127.0.0.1:18000", "[::1]:18001", "xdscp:18000"]),
                     min_size=1, max_size=3, unique=True),
    delta=st.booleans(),
)  # fmt: skip
def test_the_envoy_bootstrap_pings_no_faster_than_the_server_accepts(
    servers: list[str], delta: bool
) -> None:
    """Whatever the bootstrap's other options, the interval it gives Envoy is at least the
    margin times the server's minimum, and Envoy's timeout is shorter than its interval."""
    args = [arg for server in servers for arg in ("--xds", server)]
    emitted = _envoy_keepalive(*args, "--delta" if delta else "--sotw")
    interval = _seconds(emitted["interval"])
    minimum = _option("grpc.http2.min_ping_interval_without_data_ms") / 1000
    assert interval == keepalive.ENVOY_PING_INTERVAL_S
    assert interval >= keepalive.PING_MARGIN * minimum
    assert _seconds(emitted["timeout"]) < interval


def test_every_client_kind_pings_no_faster_than_the_server_accepts() -> None:
    """gRPC clients' fixed xDS keepalive (5 minutes) too; the server polices pings on a
    connection without streams as on one with (no 2-hour rule), strikes as documented,
    and its own pings are answered within their timeout before the next is due."""
    minimum_ms = _option("grpc.http2.min_ping_interval_without_data_ms")
    for interval in keepalive.CLIENT_PING_INTERVALS_S.values():
        assert interval * 1000 >= keepalive.PING_MARGIN * minimum_ms
    assert _option("grpc.keepalive_permit_without_calls") == 1
    assert _option("grpc.http2.max_ping_strikes") == keepalive.MAX_PING_STRIKES
    assert _option("grpc.keepalive_timeout_ms") < _option("grpc.keepalive_time_ms")


def test_a_second_process_cannot_share_the_xds_port() -> None:
    """SO_REUSEPORT (grpc's default) is off."""
    assert _option("grpc.so_reuseport") == 0


def _frame(kind: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\0\0\0\0" + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    header = await reader.readexactly(9)
    length = int.from_bytes(header[:3], "big")
    return header[3], header[4], await reader.readexactly(length)


async def _ping_until_goaway(port: int) -> tuple[int, bytes, int]:
    """Ping the server back to back (each once the last was answered) until it sends GOAWAY:
    (its error code, its debug data, how many pings were sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PREFACE + _frame(SETTINGS, 0))
    sent = 0
    try:
        while sent < 100:
            sent += 1
            writer.write(_frame(PING, 0, sent.to_bytes(8, "big")))
            await writer.drain()
            while True:
                kind, flags, payload = await _read_frame(reader)
                if kind == SETTINGS and not flags & ACK:
                    writer.write(_frame(SETTINGS, ACK))
                elif kind == GOAWAY:
                    return int.from_bytes(payload[4:8], "big"), payload[8:], sent
                elif kind == PING and flags & ACK:
                    break
        raise AssertionError(f"no GOAWAY after {sent} pings")
    finally:
        writer.close()


async def test_a_client_pinging_faster_than_allowed_gets_goaway() -> None:
    """A connection flooding pings is still cut off (the policing protects xdscp): pings
    back to back are all closer together than the minimum, and the one after
    MAX_PING_STRIKES strikes (the first ping is free) is answered with GOAWAY."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        code, debug, sent = await asyncio.wait_for(_ping_until_goaway(port), 60)
    finally:
        await server.stop(None)
    assert code == ENHANCE_YOUR_CALM
    assert debug == b"too_many_pings"
    assert sent >= keepalive.MAX_PING_STRIKES + 2
