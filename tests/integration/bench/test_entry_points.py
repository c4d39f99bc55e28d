"""Every benchmark entry point runs at a tiny size: it exits 0 and prints its table.

Each `python -m bench.X` is run as `make bench-*` runs it (a child process, from the
repository root), with flags that make it small; its JSON goes to a temporary file, never to
bench/results. Only the shape of the output is checked, never a figure: the machine is shared.
Every entry point found in bench/ must have a run here, and every `make bench-*` recipe must
name one with flags its parser accepts, so neither a new bench nor a Makefile edit goes
unexercised.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.fanout.servers import go_toolchain
from tests.harness.paths import ROOT

BENCH = ROOT / "bench"
# Children the entry points start themselves (exercised through them, not alone).
CHILDREN = {
    "bench.fanout.baseline",
    "bench.fanout.generator",
    "bench.propagate.driver",
    "bench.propagate.traffic",
}
# The entry points run below; test_every_entry_point_has_a_tiny_run compares with bench/.
RUN_HERE = {
    "bench.balancer",
    "bench.csds_fetch",
    "bench.fanout",
    "bench.hash_tables",
    "bench.hostile",
    "bench.propagation",
    "bench.protocol_layer",
    "bench.registration_path",
    "bench.registry",
    "bench.scale",
    "bench.streams",
}
RUN_LIMIT_S = 600
# The first run builds the Go peers (about a minute with an empty Go build cache).
GO_PEER_TIMEOUT_S = 900
needs_go = pytest.mark.skipif(go_toolchain() is None, reason="the Go peers need `go`")


def entry_points() -> set[str]:
    """Modules of bench/ that run as `python -m`: a package's __main__ or a __main__ guard."""
    found = set()
    for path in BENCH.rglob("*.py"):
        relative = path.relative_to(ROOT).with_suffix("")
        if not all(part.isidentifier() for part in relative.parts):
            continue  # not importable: bench/.peers-venv and the like
        if path.name == "__main__.py":
            found.add(".".join(relative.parent.parts))
        elif 'if __name__ == "__main__":' in path.read_text():
            found.add(".".join(relative.parts))
    return found


def run(module: str, *args: str) -> str:
    """`python -m module args` from the repository root; its stdout (asserting exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_LIMIT_S, check=False,
    )  # fmt: skip
    tails = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{module} exited {done.returncode}:\n{tails}"
    return done.stdout


def assert_lines(stdout: str, *patterns: str) -> None:
    """Each regular expression matches some line of `stdout`."""
    lines = stdout.splitlines()
    for pattern in patterns:
        assert any(re.search(pattern, line) for line in lines), f"no line ~ {pattern!r}:\n{stdout}"


def written(path: Path) -> dict[str, Any]:
    """The JSON document a run wrote."""
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def makefile_recipes() -> tuple[dict[str, list[str]], list[str]]:
    """`make bench-*` target -> its `python -m bench.X ...` lines (without `python -m` and
    the caller's $(BENCH_ARGS)), and the prerequisites of `make bench`."""
    recipes: dict[str, list[str]] = {}
    everything: list[str] = []
    target = ""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if match := re.match(r"^(bench[\w-]*):(.*)", line):
            target = match[1]
            if target == "bench":
                everything = [t for t in match[2].split() if t.startswith("bench-")]
        elif target and line.startswith("\t") and " -m bench." in line:
            argv = [a for a in shlex.split(line.split(" -m ", 1)[1]) if a != "$(BENCH_ARGS)"]
            recipes.setdefault(target, []).append(shlex.join(argv))
        elif not line.startswith("\t"):
            target = ""
    return recipes, everything


def test_every_entry_point_has_a_tiny_run() -> None:
    """A new benchmark (or a new child of one) cannot be added without a run here."""
    assert entry_points() == RUN_HERE | CHILDREN


def test_every_make_target_runs_an_entry_point_with_accepted_flags() -> None:
    """Each `make bench-*` line names an entry point whose parser takes its flags, every
    entry point has a target, and `make bench` runs every target."""
    recipes, everything = makefile_recipes()
    named = set()
    for target, lines in recipes.items():
        for line in lines:
            module, *args = shlex.split(line)
            assert module in RUN_HERE, f"make {target}: {module} is not a benchmark"
            main = module + ".__main__" if (ROOT / module.replace(".", "/")).is_dir() else module
            importlib.import_module(main).parse_args(args)  # SystemExit on a refused flag
            named.add(module)
    assert named == RUN_HERE
    assert sorted(everything) == sorted(recipes)


def test_balancer(tmp_path: Path) -> None:
    """Every policy's pick rate at one size, and the hash table builds."""
    from bench.balancer import CASES

    out = tmp_path / "balancer.json"
    stdout = run("bench.balancer", "--sizes", "10", "--picks", "200", "--out", str(out))
    assert_lines(stdout, r"^baseline random", r"^policy\s+10 eps$", r"^build MAGLEV\s+\d")
    assert_lines(stdout, *(rf"^{re.escape(label)}\s+[\d,]+ /s" for label, *_ in CASES))
    assert set(written(out)["picks_per_s"]) == {label for label, *_ in CASES}


def test_hash_tables() -> None:
    """Ring and Maglev builds beside the literal Envoy loop; lookups beside ketama."""
    stdout = run(
        "bench.hash_tables", "--hosts", "10", "--table-size", "2053", "--ring-sizes", "64",
        "--lookups", "400",
    )  # fmt: skip
    assert_lines(
        stdout, r"^ring build\s+min_ring=64\s+hosts=100\s+xx_hash\s+[\d.]+ s$",
        r"^maglev build M=2053 hosts=10\s+equal weights\s+[\d.]+ s$",
        r"^maglev build M=2053 hosts=1024\s+lopsided", r"baseline: literal Envoy loop",
        r"^ring lookup\s+[\d,]+ /s$", r"^maglev lookup", r"baseline: ketama search",
        r"^request_hash \(1 header\)",
    )  # fmt: skip


def test_registration_path() -> None:
    """One registration's path through xdscp, counted: files, functions, hand-offs, and
    the functions from the etcd watch response to the stream's write."""
    stdout = run("bench.registration_path")
    assert_lines(
        stdout, r"^files \d+  functions \d+  async hand-offs \d+$",
        r"^  xdscp/etcd/watch\.py:\d+ _batch$", r"^  xdscp/plane/pipeline\.py:\d+ Pipeline\.build$",
        r"^  xdscp/server/service\.py:\d+ XdsService\._write$",
    )  # fmt: skip


def test_csds_fetch() -> None:
    """The fetch over two nodes and the memory of a full NACK history."""
    stdout = run("bench.csds_fetch", "2")
    assert_lines(stdout, r"^2 nodes x 20 resources: fetch [\d.]+ ms", r"^full NACK history")


@pytest.mark.parametrize("module", ["bench.streams", "bench.protocol_layer"])
@pytest.mark.parametrize("variant", [(), ("--delta",)], ids=["sotw", "delta"])
def test_in_process_stream_benches(module: str, variant: tuple[str, ...]) -> None:
    """Three streams, one change, either variant: one JSON line with the run's figures."""
    stdout = run(module, "--n", "3", "--changes", "1", *variant)
    figures = json.loads(stdout.strip().splitlines()[-1])
    assert (figures["n"], figures["delta"]) == (3, bool(variant))
    assert figures["initial_ms"] > 0
    assert figures["change_ms_median"] >= 0


@pytest.mark.etcd
def test_registry(tmp_path: Path) -> None:
    """First complete registry and update latency beside the raw watch, on a real etcd."""
    out = tmp_path / "registry.json"
    stdout = run(
        "bench.registry", "--services", "3", "--per-service", "2", "--events", "3",
        "--out", str(out),
    )  # fmt: skip
    assert_lines(
        stdout, r"^keys written: 6 ", r"^first complete registry: [\d.]+ s",
        r"^latency \(ms\)\s+p50\s+p99$", r"^raw etcd watch \(baseline\)\s+[\d.]+\s+[\d.]+$",
        r"^model update\s+[\d.]+", r"^added by xdscp\s+-?[\d.]+",
    )  # fmt: skip
    assert written(out)["added_ms"]["p99"] is not None


@pytest.mark.etcd
def test_scale(tmp_path: Path) -> None:
    """Cold start, client sync and one change's cost at two set sizes, on a real etcd."""
    out = tmp_path / "scale.json"
    stdout = run(
        "bench.scale", "--services", "3,6", "--per-service", "2", "--changes", "2",
        "--out", str(out),
    )  # fmt: skip
    assert_lines(
        stdout, r"^\s+services\s+cold start s\s+client sync s\s+RSS MiB$", r"^\s+3\s+[\d.]+",
        r"^\s+6\s+[\d.]+", r"^one change, ms \(p50 / p99\)\s+3\s+6$",
        r"^raw etcd watch \(baseline\)\s+[\d.]+ /", r"^rebuild \(translate \+ cache\)",
        r"^publish -> client has the CLA", r"^etcd write -> client has the CLA",
        r"^ratio 6 / 3 services",
    )  # fmt: skip
    assert [r["services"] for r in written(out)["results"]] == [3, 6]


@pytest.mark.envoy
def test_hostile(tmp_path: Path) -> None:
    """One abuser of each kind against `xdscp serve` and a real Envoy; its figures as JSON."""
    out = tmp_path / "hostile.json"
    run(
        "bench.hostile", "--slow", "1", "--churn", "4", "--before", "1", "--write-timeout", "1",
        "--out", str(out),
    )  # fmt: skip
    figures = written(out)
    assert figures["serve_exit"] == 0
    assert figures["propagation_ms"]["before"]["n"] >= 1
    assert figures["statuses"]["churn_answered"] == 4
    assert set(figures) >= {"alive", "rss_mib", "changes_lost", "streams_after", "stream_errors"}


@pytest.mark.go
@pytest.mark.slow
@pytest.mark.timeout(GO_PEER_TIMEOUT_S)
@needs_go
def test_fanout(tmp_path: Path) -> None:
    """The baseline, go-control-plane (built from bench/peers) and `xdscp serve`, two streams."""
    out = tmp_path / "fanout.json"
    stdout = run(
        "bench.fanout", "--n", "2", "--repeat", "1", "--servers", "baseline,go,xdscp",
        "--run-timeout", "120", "--out", str(out),
    )  # fmt: skip
    assert_lines(
        stdout,
        r"^\s+server\s+N\s+initial s\s+change ms\s+spread ms\s+cpu init s\s+cpu/change s"
        r"\s+RSS MiB\s+peak MiB$",
        r"^baseline\s+2\s+[\d.]+", r"^\s+go\s+2\s+[\d.]+", r"^\s+xdscp\s+2\s+[\d.]+",
    )  # fmt: skip
    document = written(out)
    assert [r["server"] for r in document["runs"]] == ["baseline", "go", "xdscp"]
    assert document["failed"] == []


@pytest.mark.etcd
@pytest.mark.envoy
@pytest.mark.go
@pytest.mark.slow
@pytest.mark.timeout(GO_PEER_TIMEOUT_S)
@needs_go
def test_propagation(tmp_path: Path) -> None:
    """xdscp over SotW and delta, and go-control-plane, each for two changes on a real etcd
    and Envoy (sovereign is left out: it is installed from PyPI on first use)."""
    out = tmp_path / "propagation.json"
    stdout = run(
        "bench.propagation", "--changes", "2", "--sovereign-changes", "1", "--peers", "go",
        "--delta", "--gap-ms", "0", "--out", str(out),
    )  # fmt: skip
    assert_lines(
        stdout, r"^xdscp \(2 changes\)$", r"^xdscp-delta \(2 changes\)$", r"^go \(2 changes\)$",
        r"^\s+ms\s+p50\s+p99\s+max$", r"^\s+write -> raw etcd watch \(baseline\)\s+[\d.]+",
        r"^\s+write -> Envoy's ACK at the server\s+[\d.]+", r"^\s+added: ACK - raw watch",
        r"^\s+write -> the peer's own etcd watch", r"^\s+write -> first request served",
        r"^xdscp added p50 ", r"^sovereign not measured", r"^write -> ACK p50 / p99: ",
    )  # fmt: skip
    phases = written(out)["phases"]
    assert [(p["server"], p["changes"]) for p in phases] == [
        ("xdscp", 2), ("xdscp-delta", 2), ("go", 2),
    ]  # fmt: skip
