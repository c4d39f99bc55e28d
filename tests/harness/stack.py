"""The docker-compose stack as the end-to-end suite sees it from the test-runner container.

Addresses come from the environment docker-compose.yml sets; every helper here is synchronous
(HTTP through Envoy, the xdscp and Envoy admin endpoints, the `xdscp` command) and is called
from the async tests through `asyncio.to_thread`, so the session event loop (which holds the
suite's etcd client) keeps running.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ENABLED = os.environ.get("XDSCP_E2E_COMPOSE", "") not in {"", "0"}
SKIP_REASON = (
    "docker-compose end-to-end suite: it runs in the compose stack's test-runner container"
    " (`make e2e-compose`); XDSCP_E2E_COMPOSE is not set here"
)
requires_stack = pytest.mark.skipif(not ENABLED, reason=SKIP_REASON)
"""Every e2e module carries this and the `compose` marker (`-m "not compose"` deselects)."""

ENVOY_NODE = os.environ.get("XDSCP_E2E_ENVOY_NODE", "compose-envoy")
HOST = "web"


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _named(text: str) -> dict[str, tuple[str, int]]:
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {name.strip(): _address(address.strip()) for name, address in pairs}


@dataclass(frozen=True)
class Stack:
    """Where the stack's services answer (compose service names on the compose network)."""

    envoy: tuple[str, int]
    envoy_admin: tuple[str, int]
    replicas: Mapping[str, tuple[str, int]]  # replica name -> its admin address
    backends: Mapping[str, tuple[str, int]]  # backend name -> its HTTP address
    etcd: tuple[str, ...]  # every etcd member's client URL (host: the compose service name)
    control: Path  # the volume each replica watches for its stop file
    results: Path | None

    @classmethod
    def from_env(cls) -> Stack:
        """The stack described by the XDSCP_E2E_* variables (defaults: docker-compose.yml)."""
        env = os.environ.get
        results = env("XDSCP_E2E_RESULTS")
        return cls(
            envoy=_address(env("XDSCP_E2E_ENVOY", "envoy:10000")),
            envoy_admin=_address(env("XDSCP_E2E_ENVOY_ADMIN", "envoy:9901")),
            replicas=_named(env("XDSCP_E2E_REPLICAS", "xdscp-1=xdscp-1:18001")),
            backends=_named(env("XDSCP_E2E_BACKENDS", "b0=backend-0:8080")),
            etcd=tuple(
                url.strip() for url in env("XDSCP_ETCD", "http://etcd-1:2379").split(",") if url
            ),
            control=Path(env("XDSCP_E2E_CONTROL", "/control")),
            results=Path(results) if results else None,
        )

    @staticmethod
    def member(url: str) -> str:
        """The compose service (and etcd member name) of an etcd client URL."""
        return str(urlsplit(url).hostname)

    def record(self, figure: str, **fields: Any) -> None:
        """Print a measured figure and append it to the results file `make e2e-compose` keeps."""
        line = json.dumps({"figure": figure, **fields}, sort_keys=True)
        print(line)
        if self.results is not None:
            self.results.parent.mkdir(parents=True, exist_ok=True)
            with self.results.open("a") as out:
                out.write(line + "\n")


def get(address: tuple[str, int], path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(address: tuple[str, int], path: str) -> Any:
    """An admin endpoint's JSON (raises on a non-200 answer or a connection error)."""
    status, body = get(address, path)
    if status != 200:
        raise OSError(f"GET {address}{path}: HTTP {status}")
    return json.loads(body)


def reachable(address: tuple[str, int], timeout: float = 1.0) -> bool:
    """Whether a TCP connection to `address` succeeds (False also when the name is gone)."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


class BadStatusError(OSError):
    """Envoy answered, but not with 200 from a backend."""


class Client:
    """One keep-alive HTTP/1.1 connection to Envoy's listener; `get` returns the backend name."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self._conn = http.client.HTTPConnection(*address, timeout=timeout)

    def get(self, headers: Mapping[str, str] | None = None, host: str = HOST) -> str:
        """GET / with Host: `host`; the answering backend's name (its x-backend header)."""
        self._conn.request("GET", "/", headers={"Host": host, **(headers or {})})
        response = self._conn.getresponse()
        response.read()
        name = response.getheader("x-backend")
        if response.status != 200 or not name:
            raise BadStatusError(f"HTTP {response.status} from {response.getheader('server')}")
        return name

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def count_backends(stack: Stack, n: int, headers: Mapping[str, str] | None = None) -> Counter[str]:
    """`n` sequential requests through Envoy on one connection: how many each backend got."""
    client = Client(stack.envoy)
    try:
        return Counter(client.get(headers) for _ in range(n))
    finally:
        client.close()


def xdscp(stack: Stack, *args: str) -> str:
    """Run the `xdscp` command against the stack's etcd; its stdout (raises on failure)."""
    done = subprocess.run(
        ["xdscp", "--log-format", "console", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDSCP_ETCD": ",".join(stack.etcd)},
    )
    if done.returncode != 0:
        raise AssertionError(f"xdscp {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Load:
    """Requests through Envoy in a thread, one keep-alive connection (a new one after any
    failure); every error or non-200 answer counts as a failed request."""

    stack: Stack
    served: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        client = Client(self.stack.envoy)
        while not self._stop.is_set():
            try:
                client.get()
                self.served += 1
            except OSError as exc:  # BadStatusError, refused, reset, timeout, HTTP protocol errors
                self.failed += 1
                self.errors.append(repr(exc))
                client.close()
                client = Client(self.stack.envoy)
        client.close()

    def start(self) -> None:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop sending and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)


async def wait_until(what: str, check: Callable[[], object], within: float) -> float:
    """Poll the (blocking) `check` off the event loop until it is true; the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if await asyncio.to_thread(check):
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s")
