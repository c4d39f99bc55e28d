"""grpc-go's own `weighted_round_robin` (gRFC A58) over three `xdscp backend --capacity`
processes (1 : 2 : 4), configured by a service config without xDS: per-call reports (the
trailer) and, separately, the out-of-band OpenRcaService stream (grpc-go then ignores the
trailers, so each run proves one path alone).

The Go client prints the backends of each window of 700 calls; the test reads windows until
one is within the bound of 1/7, 2/7, 4/7 (a count of windows, never a time), then requires the
next window to stay there. The bound, 0.03, holds for the reason the Envoy test gives: the
weight is rate / (rate / capacity), the capacity, whatever the timing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.go import build_go
from tests.integration.orca.harness import backends

pytestmark = [pytest.mark.go, pytest.mark.grpc, pytest.mark.slow]

MODULE = Path(__file__).resolve().parents[2] / "interop" / "go" / "orcaclient"
SPECS = [("one", 100.0, "text"), ("two", 200.0, "text"), ("four", 400.0, "text")]
EXPECTED = [1 / 7, 2 / 7, 4 / 7]
BOUND = 0.03
MAX_WINDOWS = 100  # 70 000 calls: far beyond the 1 s blackout at any speed


@pytest.fixture(scope="module")
def orcaclient(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_go(tmp_path_factory, MODULE, "the grpc-go ORCA tests")


def _shares(line: str, names: list[str]) -> list[float]:
    document = json.loads(line)
    assert "counts" in document, document
    counts: dict[str, int] = document["counts"]
    assert set(counts) <= set(names), counts
    return [counts.get(name, 0) / sum(counts.values()) for name in names]


def _windows(binary: str, targets: list[str], names: list[str], *, oob: bool) -> list[list[float]]:
    """Windows' shares up to the first within the bound and the one after it."""
    args = [binary, *(["-oob"] if oob else []), *targets]
    client = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    seen: list[list[float]] = []
    try:
        for line in client.stdout:
            seen.append(_shares(line, names))
            converged = [s == pytest.approx(EXPECTED, abs=BOUND) for s in seen]
            if len(seen) >= MAX_WINDOWS or (True in converged[:-1]):
                return seen
        raise AssertionError(f"orcaclient exited with {client.wait()} after {seen}")
    finally:
        client.kill()
        client.wait()


@pytest.mark.parametrize("oob", [False, True], ids=["per-call", "out-of-band"])
async def test_grpc_go_shares_follow_the_reported_capacities(orcaclient: str, oob: bool) -> None:
    """Shares 1/7, 2/7, 4/7 once converged, and they stay."""
    with backends(SPECS) as started:
        targets = [f"127.0.0.1:{backend.grpc_port}" for backend in started]
        names = [backend.name for backend in started]
        seen = await asyncio.to_thread(_windows, orcaclient, targets, names, oob=oob)
    first = next((i for i, s in enumerate(seen) if s == pytest.approx(EXPECTED, abs=BOUND)), None)
    windows = [[round(share, 4) for share in shares] for shares in seen]
    print(f"\ngrpc-go {'OOB' if oob else 'per-call'}: windows of 700 calls {windows}")
    assert first is not None, seen
    assert seen[first + 1] == pytest.approx(EXPECTED, abs=BOUND)
