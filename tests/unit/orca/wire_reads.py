"""Reading a gRPC call's ORCA trailer off the wire (grpcio's client keeps it to itself): the
call made with curl's HTTP/2, its headers and trailers as curl prints them."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from xds.data.orca.v3.orca_load_report_pb2 import OrcaLoadReport

from xdscp.orca import TRAILER


async def trailers_of(target: str, method: str, message: bytes, tmp_path: Path) -> dict[str, str]:
    """The HTTP/2 headers and trailers of one gRPC call, as curl prints them (a failed call
    answers with headers alone: "trailers-only")."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl: the trailer is read off the wire with curl's HTTP/2")
    body = tmp_path / "body"
    body.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)
    args = [
        curl, "-sv", "--http2-prior-knowledge", "-H", "content-type: application/grpc",
        "-H", "te: trailers", "--data-binary", f"@{body}", "-o", "/dev/null",
        f"http://{target}{method}",
    ]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
    lines = [line[2:] for line in done.stderr.splitlines() if line.startswith("< ")]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def report_in(trailers: dict[str, str]) -> OrcaLoadReport:
    value = trailers[TRAILER]
    return OrcaLoadReport.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
