"""The traffic process: demo backends plus a request loop through Envoy.

Run by `bench.propagation` as a child (`python -m bench.propagate.traffic --backends 4`), so
neither the backends' threads nor the request loop share a GIL with the control plane under
test. It prints `{"event": "backends", "ports": [...]}` once its HTTP demo backends
(`xdscp.demo.backend`, named b0..bN-1) listen, then obeys stdin lines:

- `ARM K NAME PORT INTERVAL_MS LIMIT_S`: print `{"event": "armed", "change": K}`, then send
  `GET /` with `Host: bench` to Envoy's listener on 127.0.0.1:PORT over one keep-alive
  connection, pausing INTERVAL_MS between requests, until a response carries
  `x-backend: NAME`; print `{"event": "served", "change": K, "t": ..., ...}` with the
  CLOCK_MONOTONIC time that response arrived (`t`), when its request was sent (`t_sent`) and
  when the request before it was sent (`t_prev_sent`): the first request to reach the new
  endpoint was sent within (`t_prev_sent`, `t_sent`]. After LIMIT_S: `{"event": "missed"}`.
- `STOP` or end of input: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import sys
import time
from collections import Counter

from xdscp.demo.backend import Backend, BackendConfig

HOST = "bench"


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def start_backends(count: int) -> list[Backend]:
    """HTTP-only demo backends b0..b{count-1} on free loopback ports (threads keep serving)."""
    backends = [Backend(BackendConfig(f"b{i}", grpc_port=-1)) for i in range(count)]
    for backend in backends:
        await backend.start()
    return backends


class Loop:
    """A keep-alive HTTP/1.1 client to Envoy's listener, reconnecting after errors."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def who(self) -> str:
        """The backend answering one request ('' for an error or a non-200 answer)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            self.conn.request("GET", "/", headers={"Host": HOST})
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return ""
        return (response.getheader("x-backend") or "") if response.status == 200 else ""

    def close(self) -> None:
        """Drop the connection."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_until(loop: Loop, change: int, name: str, interval_s: float, limit_s: float) -> None:
    """Send requests until `name` answers (or `limit_s` passes); report the times."""
    emit("armed", change=change)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + limit_s
    previous = float("nan")
    while time.monotonic() < deadline:
        sent = time.monotonic()
        who = loop.who()
        received = time.monotonic()
        seen[who] += 1
        if who == name:
            emit("served", change=change, t=received, t_sent=sent, t_prev_sent=previous,
                 requests=sum(seen.values()), seen=dict(seen))  # fmt: skip
            return
        previous = sent
        if interval_s:
            time.sleep(interval_s)
    emit("missed", change=change, seen=dict(seen))


def main() -> None:
    """Start the backends, then follow stdin commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=int, default=4)
    args = parser.parse_args()
    backends = asyncio.run(start_backends(args.backends))
    emit("backends", ports=[b.http_port for b in backends])
    loops: dict[int, Loop] = {}
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "STOP":
            break
        if words[0] == "ARM" and len(words) == 6:
            change, name, port = int(words[1]), words[2], int(words[3])
            loop = loops.setdefault(port, Loop(port))
            run_until(loop, change, name, float(words[4]) / 1000, float(words[5]))
    for loop in loops.values():
        loop.close()
    with contextlib.suppress(Exception):
        asyncio.run(stop_backends(backends))


async def stop_backends(backends: list[Backend]) -> None:
    """Stop every backend."""
    for backend in backends:
        await backend.stop()


if __name__ == "__main__":
    main()
