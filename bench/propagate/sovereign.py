"""The sovereign phase: the same cluster and endpoints served by sovereign to a polling Envoy.

sovereign (PyPI `sovereign`, the Python control plane) is installed in its own venv,
`bench/.peers-venv` (git-ignored; created here on first use), never in the project's venv.
It has no etcd source: it polls sources (files, HTTP, inline) every `sources_refresh_rate`
seconds (default 30, an integer, so 1 is its fastest) and Envoy polls it over REST every
`refresh_delay`. This phase gives it:

- a file source (`instances.json`) holding service `bench` with the ClusterLoadAssignment
  xdscp built for the current change (as JSON), replaced atomically per change;
- templates: `clusters` renders xdscp's Cluster `bench` with its EDS config switched from
  ADS to REST polling of sovereign; `endpoints` renders the CLA from the source;
- an Envoy with xdscp's listener and routes inlined as a static listener (LDS/RDS are not
  what is compared), CDS and EDS over REST from sovereign every `refresh_delay`.

Per change: a random pause (uniform over one source poll plus one Envoy poll, so writes do not
all land at the same point of the poll cycles), t0 just before the file is replaced, then the
first request served by the new endpoint. There is no ACK in REST polling and no etcd in
sovereign's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, json_format

from bench.fanout.servers import wait_port
from bench.propagate import report
from bench.propagate.changes import SERVICE
from bench.propagate.rig import (
    NODE_ID,
    Rig,
    ms,
    start_envoy,
    stop_envoy,
)
from xdscp.cache import Snapshot, TypeUrl
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

VERSION = "0.32.12"
VENV = Path(__file__).resolve().parent.parent / ".peers-venv"
CLUSTER = "sovereign"


def ensure_venv() -> Path:
    """The `sovereign` command of the separate venv, installing it there when missing."""
    command = VENV / "bin" / "sovereign"
    if command.exists():
        return command
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "--quiet", f"sovereign=={VERSION}"],
        check=True, timeout=900,
    )  # fmt: skip
    return command


def as_dict(resource_any: bytes) -> dict[str, Any]:
    """A serialized `Any` as the JSON dict Envoy reads (snake_case field names)."""
    message = any_pb2.Any.FromString(resource_any)
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result


def rest_source(refresh_s: float) -> dict[str, Any]:
    """A v3 ConfigSource polling sovereign over REST."""
    return {
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": "REST",
            "transport_api_version": "V3",
            "cluster_names": [CLUSTER],
            "refresh_delay": f"{refresh_s}s",
        },
    }


def static_listener(snapshot: Snapshot) -> dict[str, Any]:
    """xdscp's listener with its route configuration inlined (no RDS)."""
    (listener,) = (as_dict(r.any_bytes) for r in snapshot.resources[TypeUrl.LISTENER].values())
    (routes,) = (as_dict(r.any_bytes) for r in snapshot.resources[TypeUrl.ROUTE].values())
    routes.pop("@type", None)
    routes["validate_clusters"] = False  # `bench` arrives later, over CDS
    listener.pop("@type", None)
    for chain in listener.get("filter_chains", []):
        for item in chain.get("filters", []):
            manager = item.get("typed_config", {})
            if "rds" in manager:
                del manager["rds"]
                manager["route_config"] = routes
    return listener


def bootstrap(snapshot: Snapshot, port: int, refresh_s: float) -> dict[str, Any]:
    """Envoy: static listener, sovereign as a static cluster, CDS over REST."""
    upstream = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": port}}}}  # fmt: skip
    return {
        "node": {"id": NODE_ID, "cluster": "xdscp"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"cds_config": rest_source(refresh_s)},
        "static_resources": {
            "listeners": [static_listener(snapshot)],
            "clusters": [{
                "name": CLUSTER, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": CLUSTER,
                                    "endpoints": [{"lb_endpoints": [upstream]}]},
            }],
        },
    }  # fmt: skip


def write_config(
    workdir: Path, snapshot: Snapshot, source_refresh_s: int, refresh_s: float
) -> Path:
    """sovereign's config and templates; returns the config path."""
    cluster = as_dict(snapshot.resources[TypeUrl.CLUSTER][SERVICE].any_bytes)
    cluster["eds_cluster_config"]["eds_config"] = rest_source(refresh_s)
    clusters = workdir / "clusters.yaml"
    clusters.write_text("{% raw %}\n" + json.dumps({"resources": [cluster]}) + "\n{% endraw %}\n")
    endpoints = workdir / "endpoints.yaml"
    endpoints.write_text(
        "resources:\n{% for instance in instances %}\n  - {{ instance.cla | tojson }}\n"
        "{% endfor %}\n"
    )
    config = {
        "sources": [{"type": "file", "scope": "default", "config": {"spec": {
            "protocol": "file", "serialization": "json",
            "path": str(workdir / "instances.json")}}}],
        "source_config": {"refresh_rate": source_refresh_s},
        "templates": {"default": [
            {"type": kind, "spec": {"protocol": "file", "serialization": "jinja2",
                                    "path": str(path)}}
            for kind, path in (("clusters", clusters), ("endpoints", endpoints))]},
    }  # fmt: skip
    path = workdir / "sovereign.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def write_instances(workdir: Path, snapshot: Snapshot) -> None:
    """The polled source: service `bench` with the change's CLA, replaced atomically."""
    cla = as_dict(snapshot.resources[TypeUrl.ENDPOINT][SERVICE].any_bytes)
    cla["@type"] = str(TypeUrl.ENDPOINT)
    instances = [{"name": SERVICE, "service_clusters": ["*"], "cla": cla}]
    partial = workdir / "instances.json.tmp"
    partial.write_text(json.dumps(instances))
    os.replace(partial, workdir / "instances.json")


async def start_sovereign(command: Path, config: Path, workdir: Path) -> tuple[Any, int]:
    """sovereign (gunicorn, one uvicorn worker) on a free loopback port, in its own session
    so that stopping it stops its worker too."""
    port = free_port()
    env = {**os.environ, "SOVEREIGN_CONFIG": f"file://{config}", "SOVEREIGN_HOST": "127.0.0.1",
           "SOVEREIGN_PORT": str(port), "SOVEREIGN_WORKERS": "1"}  # fmt: skip
    with (workdir / "sovereign.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(command), env=env, cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_port(port, 60)
    except TimeoutError:
        await stop_sovereign(process)
        tail = (workdir / "sovereign.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"sovereign did not listen: {tail}") from None
    return process, port


async def stop_sovereign(process: Any) -> None:
    """SIGINT (gunicorn's quick shutdown) to its process group, then SIGKILL; reaped."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        if process.returncode is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            continue
    # The master is gone; make sure no worker of its group is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def phase(
    rig: Rig, snapshots: dict[int, Snapshot], changes: int, source_refresh_s: int,
    refresh_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Start sovereign and an Envoy polling it, run `changes` file changes, stop both."""
    command = await asyncio.to_thread(ensure_venv)
    workdir = rig.workdir / "sovereign"
    workdir.mkdir()
    write_instances(workdir, snapshots[0])
    config = write_config(workdir, snapshots[0], source_refresh_s, refresh_s)
    process, port = await start_sovereign(command, config, workdir)
    envoy: EnvoyProcess | None = None
    limit = 2 * (source_refresh_s + refresh_s) + 10
    samples = []
    try:
        envoy = await start_envoy(bootstrap(snapshots[0], port, refresh_s), workdir / "envoy")
        await rig.arm(0, limit, interval_ms=5)
        await rig.served(0, limit + 1)
        jitter = random.Random(0)  # spreads write times over the poll cycles
        for change in range(1, changes + 1):
            # A write right after the previous change showed up lands at the same point of
            # sovereign's poll cycle every time: a random pause spreads the writes over it.
            await asyncio.sleep(jitter.uniform(0, source_refresh_s + refresh_s))
            await rig.arm(change, limit, interval_ms=5)
            t0 = time.monotonic()
            await asyncio.to_thread(write_instances, workdir, snapshots[change])
            served = await rig.served(change, limit + 1)
            samples.append({"change": change, "first_ms": ms(float(served["t"]) - t0),
                            "requests": served["requests"]})  # fmt: skip
    finally:
        await stop_envoy(envoy)
        await stop_sovereign(process)
    settings = {"version": VERSION, "sources_refresh_rate_s": source_refresh_s,
                "envoy_refresh_delay_s": refresh_s, "workers": 1}  # fmt: skip
    return report.summarize("sovereign", samples, sovereign=settings)
