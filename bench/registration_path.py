"""The path of one registration through xdscp: files, functions and async hand-offs.

Run: `.venv/bin/python -m bench.registration_path`.

One plane built as `xdscp serve` builds it (an etcd registry source, on the in-process
`xdscp.testing.FakeEtcd`), one ADS stream subscribed to the ClusterLoadAssignment of `web`
and ACKed; then a second endpoint of `web` is written to etcd. A profile hook
(`sys.setprofile`, the event loop's thread) records every Python function of the `xdscp`
package (its tests' helpers, `xdscp.testing`, and generated protobuf code left out) entered
from the moment the etcd watch response reaches xdscp (`xdscp.etcd.watch._batch`) to the
moment the stream writes the response (`XdsService._write`), both included:

- files: distinct source files those functions are in;
- functions: distinct functions and methods (a coroutine resumed again counts once;
  comprehensions and lambdas are part of the function they are written in);
- hand-offs: event loop callbacks that ran any of them, minus one (each further callback is
  one point where the work waited for the loop: a task woken, a `call_soon`).

The counts are of code, not time: the same on every run, with nothing else running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from xdscp.cache import TypeUrl
from xdscp.etcd import EtcdClient
from xdscp.etcd._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.registry import Placement, build_registration
from xdscp.registry.registration import encode
from xdscp.sources import EtcdRegistrySource
from xdscp.testing import FakeEtcd, wait_for

PACKAGE = Path(__file__).resolve().parent.parent / "xdscp"
LEFT_OUT = (PACKAGE / "testing", PACKAGE / "etcd" / "_proto")
START, END = ("watch.py", "_batch"), ("service.py", "_write")
LIMIT_S = 10.0
# code objects of expressions, not functions (3.11 gives each its own)
EXPRESSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>"})


@dataclass
class PathTrace:
    """What the profile hook saw between START and END."""

    recording: bool = False
    done: bool = False
    callback: int = 0  # event loop callbacks run so far
    functions: dict[tuple[str, int, str], None] = field(default_factory=dict)
    callbacks: set[int] = field(default_factory=set)

    def hook(self, frame: FrameType, event: str, _arg: Any) -> None:
        """`sys.setprofile`'s hook."""
        if event != "call" or self.done:
            return
        code = frame.f_code
        if code.co_name == "_run" and code.co_filename.endswith("asyncio/events.py"):
            self.callback += 1
            return
        path = Path(code.co_filename)
        if not path.is_relative_to(PACKAGE) or any(path.is_relative_to(p) for p in LEFT_OUT):
            return
        if not self.recording and (path.name, code.co_name) == START:
            self.recording = True
        if not self.recording or code.co_name in EXPRESSIONS:
            return
        self.functions[(code.co_filename, code.co_firstlineno, code.co_qualname)] = None
        self.callbacks.add(self.callback)
        if (path.name, code.co_name) == END:
            self.done = True

    def report(self) -> str:
        """The counts, then every function in the order first entered."""
        files = {name for name, _, _ in self.functions}
        lines = [
            f"files {len(files)}  functions {len(self.functions)}"
            f"  async hand-offs {len(self.callbacks) - 1}"
        ]
        for name, line, qualname in self.functions:
            lines.append(f"  {Path(name).relative_to(PACKAGE.parent)}:{line} {qualname}")
        return "\n".join(lines)


def acks(plane: ControlPlane) -> float:
    """The ClusterLoadAssignment ACKs the plane has recorded."""
    labels = {"type": "ClusterLoadAssignment"}
    return plane.metrics_registry.get_sample_value("xdscp_push_ack_seconds_count", labels) or 0.0


async def raw_put(url: str, key: bytes, value: bytes) -> None:
    """Write `key` with etcd's own stub (no xdscp code on the writing side)."""
    async with grpc.aio.insecure_channel(url.removeprefix("http://")) as channel:
        await rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=key, value=value))


def registration(port: int) -> tuple[bytes, bytes]:
    """The key and value `xdscp register` writes for web on 127.0.0.1:`port`."""
    key, value = encode(build_registration("web", "127.0.0.1", port), Placement())
    return key.encode(), value


async def subscribe(port: int) -> AsyncGenerator[discovery_pb2.DiscoveryResponse, None]:
    """An Envoy-like ADS stream subscribed to web's ClusterLoadAssignment, ACKing each."""
    requests: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
    node = base_pb2.Node(id="path", cluster="bench", user_agent_name="envoy")
    first = discovery_pb2.DiscoveryRequest(
        node=node, type_url=TypeUrl.ENDPOINT, resource_names=["web"]
    )
    requests.put_nowait(first)

    async def outgoing() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while True:
            yield await requests.get()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            outgoing()
        )
        async for response in call:
            ack = discovery_pb2.DiscoveryRequest(
                type_url=response.type_url,
                resource_names=["web"],
                version_info=response.version_info,
                response_nonce=response.nonce,
            )
            requests.put_nowait(ack)
            yield response


async def trace() -> PathTrace:
    """Run the registration once under the profile hook."""
    found = PathTrace()
    async with FakeEtcd() as etcd, EtcdClient(etcd.config()) as client:
        await client.put(*registration(8080))
        plane = build_plane(
            ServerConfig(serve=ServeOptions(xds_port=0, admin_port=0)),
            sources=[EtcdRegistrySource(client)],
        )
        await plane.start()
        try:
            stream = subscribe(plane.xds_port)
            async with asyncio.timeout(LIMIT_S):
                await anext(stream)  # the first endpoint, then ACKed
                await wait_for(lambda: acks(plane) >= 1)  # nothing left in flight
                sys.setprofile(found.hook)
                try:
                    await raw_put(etcd.url, *registration(8081))
                    await anext(stream)
                finally:
                    sys.setprofile(None)
            await stream.aclose()
        finally:
            await plane.stop()
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (none: the path is counted, not timed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    return parser.parse_args(argv)


def main() -> None:
    """Print the counts and the functions on the path."""
    parse_args()
    print(asyncio.run(trace()).report())


if __name__ == "__main__":
    main()
