"""Demo backends answer HTTP and gRPC with their own name."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import grpc
from google.protobuf import wrappers_pb2

from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig
from xdscp.testing import wait_for


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


def _call(port: int, method: str, path: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_a_backend_in_another_process_is_told_to_fail_over_http() -> None:
    """POST /_demo/fail?status=503 makes GETs answer 503 (counted as failed), /_demo/recover
    makes them answer 200 again; /_demo/ calls are never counted as requests; a bad status
    or an unknown control is refused and changes nothing."""
    backend = Backend(BackendConfig("b-9", grpc_port=-1))
    await backend.start()
    port = backend.http_port
    try:
        status, body = await asyncio.to_thread(_call, port, "POST", "/_demo/fail?status=503")
        assert (status, body["status"]) == (200, 503)
        assert (await asyncio.to_thread(_call, port, "GET", "/"))[0] == 503
        assert (await asyncio.to_thread(_call, port, "POST", "/_demo/fail?status=200"))[0] == 400
        assert (await asyncio.to_thread(_call, port, "POST", "/_demo/explode"))[0] == 404
        assert backend.faults.status == 503
        await asyncio.to_thread(_call, port, "POST", "/_demo/recover")
        assert (await asyncio.to_thread(_call, port, "GET", "/"))[0] == 200
        _, counts = await asyncio.to_thread(_call, port, "GET", "/_demo/counts")
        assert {k: counts[k] for k in ("requests", "failed", "status")} == {
            "requests": 2, "failed": 1, "status": 0,
        }  # fmt: skip
    finally:
        await backend.stop()


async def test_held_requests_stay_in_flight_until_released() -> None:
    """hold(): a GET arrives (counted, in flight) and is not answered until release()."""
    backend = Backend(BackendConfig("b-h", grpc_port=-1))
    await backend.start()
    try:
        backend.faults.hold()
        answer = asyncio.ensure_future(asyncio.to_thread(_http_get, backend.http_port))
        await wait_for(lambda: backend.faults.in_flight > 0)
        assert not answer.done()
        backend.faults.release()
        body, _ = await answer
        assert json.loads(body)["backend"] == "b-h"
        assert backend.faults.in_flight == 0
    finally:
        await backend.stop()
