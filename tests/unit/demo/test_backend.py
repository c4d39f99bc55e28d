"""Demo backends answer HTTP and gRPC with their own name."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
from google.protobuf import wrappers_pb2

from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig


def _http_get(port: int) -> tuple[str, dict[str, str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/any/path", timeout=5) as response:
        return response.read().decode(), dict(response.headers)


async def test_backend_answers_http_and_grpc_with_its_name() -> None:
    """GET returns {"backend": NAME} and x-backend; /xdscp.demo.Echo/Who returns NAME."""
    backend = Backend(BackendConfig("b-7"))
    await backend.start()
    try:
        body, headers = await asyncio.to_thread(_http_get, backend.http_port)
        assert json.loads(body) == {"backend": "b-7"}
        assert headers["x-backend"] == "b-7"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.grpc_port}") as channel:
            who = channel.unary_unary(
                WHO_METHOD,
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString,
            )
            reply = await who(wrappers_pb2.StringValue(), timeout=5)
        assert reply.value == "b-7"
    finally:
        await backend.stop()


async def test_protocol_can_be_turned_off() -> None:
    """A port of -1 leaves that protocol unserved."""
    backend = Backend(BackendConfig("only-grpc", http_port=-1))
    await backend.start()
    try:
        assert backend.http_port == 0
        assert backend.grpc_port > 0
    finally:
        await backend.stop()
