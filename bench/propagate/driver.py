"""The etcd driver process: writes each change and times the raw watch (the baseline).

Run by `bench.propagation` as a child (`python -m bench.propagate.driver --etcd URL`), so the
writes and the baseline watch do not run on the event loop of the control plane under test.
Both use our etcd client (`xdscp.etcd`). JSON lines out (CLOCK_MONOTONIC seconds):

- `{"event": "ready"}` once the raw watch is established;
- stdin `WRITE K PORT` -> `{"event": "written", "change": K, "t0": ..., "t_done": ...}`:
  `t0` is taken just before the transaction (its value is prepared before), `t_done` when
  etcd answered;
- `{"event": "watch", "change": K, "t": ...}` when the raw prefix watch delivers the PUT of K;
- stdin `RESET PORT` -> `{"event": "reset"}` (every endpoint removed, change 0 registered);
- stdin `STOP` or end of input: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from bench.propagate.changes import PREFIX, change_ops, reset, transaction
from xdscp.etcd import EtcdClient, EtcdConfig, watch_prefix


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def raw_watch(client: EtcdClient, ready: asyncio.Event) -> None:
    """Report the arrival of every change's PUT on a bare prefix watch."""
    _, revision = await client.get_prefix(b"/none/")
    ready.set()  # from `revision + 1` on: a write made before the watch is created still shows
    async for batch in watch_prefix(client, PREFIX.encode(), revision + 1):
        now = time.monotonic()
        for event in batch.events:
            name = event.key.decode().rsplit("/", 1)[-1]
            if event.value and name.startswith("e"):
                emit("watch", change=int(name[1:]), t=now)


async def commands(writer: EtcdClient) -> None:
    """Follow stdin until STOP or its end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if not words or words[0] == "STOP":
            return
        if words[0] == "WRITE" and len(words) == 3:
            change, port = int(words[1]), int(words[2])
            ops = change_ops(change, port)
            t0 = time.monotonic()
            await transaction(writer, ops)
            emit("written", change=change, t0=t0, t_done=time.monotonic())
        elif words[0] == "RESET" and len(words) == 2:
            await reset(writer, int(words[1]))
            emit("reset")


async def main_async(url: str) -> None:
    """Writer and watcher on their own clients (as in the registry bench)."""
    config = EtcdConfig(endpoints=(url,), connect_timeout=1.0)
    async with EtcdClient(config) as writer, EtcdClient(config) as watcher:
        ready = asyncio.Event()
        watching = asyncio.create_task(raw_watch(watcher, ready))
        await ready.wait()
        await asyncio.sleep(0.2)  # let the watch be created, so that it times the first write
        emit("ready")
        try:
            await commands(writer)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", required=True, help="etcd client URL")
    asyncio.run(main_async(parser.parse_args().etcd))


if __name__ == "__main__":
    main()
