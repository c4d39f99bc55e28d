"""A proxyless grpcio client driven over stdin: `python -m tests.harness.grpc_client TARGET`.

grpcio builds its xDS client once per process from `GRPC_XDS_BOOTSTRAP_CONFIG`, so every
client (every node id) is its own process. It dials `TARGET` (`xds:///SERVICE`) once, then
answers each command line on stdin with one JSON line on stdout:

    {"n": 100, "concurrency": 1}                        -> n calls, `concurrency` at a time
    {"header": "x-user", "keys": ["a", "b"]}            -> one call per key, sent in `header`
    {"target": "xds:///api", "timeout": 20, "n": 1}     -> the calls on another target's channel
                                                           (dialed on first use), each call
                                                           given `timeout` seconds (default 5)

    {"counts": {"b0": 40, ...}, "picks": ["b0", ...], "errors": []}

Every call is `/xdscp.demo.Echo/Who` (a `google.protobuf.StringValue` holding the backend's
name). The tests' grpc-go client (tests/interop/go/xdsclient) speaks the same protocol.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

WHO = "/xdscp.demo.Echo/Who"
FIRST_CALL_S = 20.0
CALL_S = 5.0


def _call(who: Any, key: tuple[str, str] | None, timeout: float) -> tuple[str, str]:
    """(backend name, "") or ("", error)."""
    try:
        reply = who(
            wrappers_pb2.StringValue(),
            timeout=timeout,
            metadata=(key,) if key else None,
            wait_for_ready=True,
        )
    except grpc.RpcError as exc:
        return "", f"{exc.code().name}: {exc.details()}"
    return reply.value, ""


def run(who: Any, command: dict[str, Any]) -> dict[str, Any]:
    """Make the calls one command asks for; picks are in call order (keys' order)."""
    keys = command.get("keys")
    timeout = float(command.get("timeout", CALL_S))
    calls: list[tuple[str, str] | None] = (
        [(command["header"], k) for k in keys] if keys else [None] * int(command.get("n", 1))
    )
    workers = max(1, int(command.get("concurrency", 1)))
    if workers == 1:
        results = [_call(who, key, timeout) for key in calls]
    else:  # `workers` calls in flight at any time
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda key: _call(who, key, timeout), calls))
    picks = [name for name, _ in results]
    return {
        "counts": dict(Counter(p for p in picks if p)),
        "picks": picks,
        "errors": [error for _, error in results if error],
    }


def _who(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        WHO,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


def main(argv: list[str]) -> int:
    """Dial the target, wait for the first answer, then serve commands until stdin closes."""
    (target,) = argv
    with contextlib.ExitStack() as channels:
        whos = {target: _who(channels.enter_context(grpc.insecure_channel(target)))}
        _, error = _call(whos[target], None, FIRST_CALL_S)  # the xDS resources arrive meanwhile
        print(json.dumps({"ready": not error, "error": error}), flush=True)
        for line in sys.stdin:
            if line.strip():
                command = json.loads(line)
                other = command.get("target", target)
                if other not in whos:
                    whos[other] = _who(channels.enter_context(grpc.insecure_channel(other)))
                print(json.dumps(run(whos[other], command)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
