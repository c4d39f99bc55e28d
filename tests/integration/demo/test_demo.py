"""`xdscp demo` as a user runs it: a subprocess with real etcd, xdscp, Envoy and backends.

Each run gets its own session (`start_new_session`): every child the demo starts inherits it,
so "nothing left running" is checked as "no process of that session survives the demo",
besides the pids and ports the demo reports.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

pytestmark = [pytest.mark.envoy, pytest.mark.etcd, pytest.mark.slow]

N = 300
STRATEGIES = (
    "round_robin",
    "weighted_round_robin",
    "random",
    "weighted_random",
    "least_request",
    "ring_hash",
    "maglev",
    "source_ip_hash",
)
WEIGHT_SHARES = {"b1": 0.1, "b2": 0.2, "b3": 0.7}
# The load-aware step: capacities 100, 200, 400 requests/s with equal weights, then b1's 400.
LOAD_SHARES = (
    {"b1": 1 / 7, "b2": 2 / 7, "b3": 4 / 7},
    {"b1": 2 / 5, "b2": 1 / 5, "b3": 2 / 5},
)
LOAD_BOUND = 0.03  # each share, absolute: see xdscp/demo/load.py
# The adaptive step: the same capacities, weights xdscp computes (the heaviest 1000): each
# weight's share within 0.025 of the capacities' (xdscp/demo/adaptive.py), each measured share
# within 0.03 of the prediction.
ADAPTIVE_WEIGHT_BAND = 0.025
ADAPTIVE_BOUND = 0.03
TOUR_TIMEOUT_S = 240  # the tour takes about 45 s on an idle machine


def run_demo(*args: str, tmp: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`python -m xdscp demo ARGS` in a new session (its work directory under `tmp`); fails
    the test if any process of that session is still running once the demo has exited."""
    command = [sys.executable, "-m", "xdscp", "demo", *args]
    process = subprocess.Popen(
        command,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    left = session_members(process.pid)
    if left:
        os.killpg(process.pid, 9)
    assert not left, f"processes left running: {left}"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@contextlib.contextmanager
def demo_session(*args: str, tmp: Path) -> Iterator[subprocess.Popen[str]]:
    """`python -m xdscp demo ARGS` in a new session, stdout and stderr merged (its work
    directory under `tmp`); killed with its whole session if it is still running at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()


def session_members(session: int) -> list[str]:
    """`pid comm` of every live process whose session id is `session` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, _pgrp, sid = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(f"{entry.name} {comm}")
    return found


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def sigma_bound(n: int, p: float) -> float:
    """5 sigma of a binomial count, widened for a prediction estimated from 20000 picks."""
    return 5 * math.sqrt(n * p * (1 - p) * (1 + n / 20_000))


def counts(strategy: dict[str, Any]) -> dict[str, int]:
    """Backend name → requests it answered."""
    return {b["name"]: b["measured"] for b in strategy["backends"]}


def check_failure_scene(failure: dict[str, Any], requests: int) -> None:
    """b2 failing: a third of the requests fail without a policy (as the reference predicts);
    with outlier detection + retries none fail, b2 receives the threshold's 3 (one more in
    flight at most) before Envoy counts the ejection, none while ejected, and it is back in
    rotation after recovering."""
    assert failure["ok"], failure
    assert failure["backend"] == "b2"
    assert (failure["ejections_enforced"], failure["ejections_active"]) == (1, 1)
    without, until, ejected, back = failure["steps"]
    assert all(s["requests"] == requests for s in (without, ejected, back))
    assert abs(without["errors"] - requests / 3) <= 1.5
    assert without["failing_received"] == without["errors"]
    assert without["answered"].get("b2", 0) == 0
    assert 3 <= until["failing_received"] <= 4
    assert until["errors"] == ejected["errors"] == back["errors"] == 0
    assert ejected["failing_received"] == 0
    assert ejected["answered"].get("b2", 0) == 0
    assert all(abs(ejected["answered"][b] - requests / 2) <= 1.5 for b in ("b1", "b3"))
    assert all(abs(back["answered"][b] - requests / 3) <= 1.5 for b in ("b1", "b2", "b3"))
    assert failure["back_after_s"] < 30


def check_load_step(load: dict[str, Any]) -> None:
    """Client-side WRR with every registered weight 1: Envoy's shares are the capacities'
    (1/7, 2/7, 4/7), then after b1's capacity changes 100 → 400, 2/5, 1/5, 2/5; each within
    0.03 of those and of the reference balancer's prediction, every request answered."""
    assert load["policy"] == "client_side_weighted_round_robin"
    assert load["ok"], load
    assert [p["capacities"] for p in load["phases"]] == [
        {"b1": 100, "b2": 200, "b3": 400},
        {"b1": 400, "b2": 200, "b3": 400},
    ]
    for phase, wanted in zip(load["phases"], LOAD_SHARES, strict=True):
        assert phase["errors"] == 0
        requests = phase["requests"]
        assert sum(b["measured"] for b in phase["backends"]) == requests
        for backend in phase["backends"]:
            assert backend["weight"] == 1  # the registered weights: equal
            share = backend["measured"] / requests
            assert abs(share - wanted[backend["name"]]) <= LOAD_BOUND, (backend, wanted)
            assert abs(backend["predicted"] - wanted[backend["name"]]) <= 0.005, backend
            assert abs(share - backend["predicted"]) <= LOAD_BOUND, backend


def check_adaptive_step(adaptive: dict[str, Any]) -> str:
    """`weighted_round_robin` + `adaptive_weights`, every registered weight 1: the weights
    xdscp served (and Envoy held) give the capacities' shares, then follow b1's change; the
    measured shares are the predicted ones (1/7, 2/7, 4/7, then 2/5, 1/5, 2/5) within 0.03,
    every request answered, at least one push per phase. Returns the figures, one line."""
    assert adaptive["policy"] == "weighted_round_robin"
    assert adaptive["adaptive_weights"] is not None
    assert adaptive["ok"], adaptive
    assert [p["capacities"] for p in adaptive["phases"]] == [
        {"b1": 100, "b2": 200, "b3": 400},
        {"b1": 400, "b2": 200, "b3": 400},
    ]
    figures = []
    for phase, wanted in zip(adaptive["phases"], LOAD_SHARES, strict=True):
        assert phase["errors"] == 0
        assert phase["pushes"] >= 1
        requests = phase["requests"]
        backends = phase["backends"]
        assert sum(b["measured"] for b in backends) == requests
        weights = {b["name"]: b["weight"] for b in backends}
        assert max(weights.values()) == 1000  # xdscp's whole weights: the heaviest 1000
        for backend in backends:
            name = backend["name"]
            held = weights[name] / sum(weights.values())
            assert abs(held - wanted[name]) <= ADAPTIVE_WEIGHT_BAND, (weights, wanted)
            share = backend["measured"] / requests
            assert abs(backend["predicted"] - wanted[name]) <= 0.005, backend
            assert abs(share - backend["predicted"]) <= ADAPTIVE_BOUND, backend
        figures.append(
            f"weights {[weights[n] for n in ('b1', 'b2', 'b3')]} after {phase['seconds']:.1f} s"
            f" ({phase['pushes']} pushes; model {phase['model_seconds']:.1f} s)"
        )
    return f"adaptive step {adaptive['seconds']:.1f} s: " + "; ".join(figures)


def test_once_tours_every_strategy_and_leaves_nothing_running(tmp_path: Path) -> None:
    """`--once --requests 300`: exit 0, a table per strategy, shares where the reference
    balancer puts them (rotations within 1.5 requests, random ones within 5 sigma and away
    from the wrong split, hash policies request for request), and afterwards no child pid
    alive and no child port open."""
    report = tmp_path / "report.json"
    started = time.monotonic()
    result = run_demo("--once", "--requests", str(N), "--report", str(report), tmp=tmp_path,
                      timeout=TOUR_TIMEOUT_S)  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    for index, name in enumerate(STRATEGIES, 1):
        assert f"[{index}/8] {name}" in result.stdout
    assert "failure scene: b2 answers 503" in result.stdout
    assert "[load 1/2] client_side_weighted_round_robin" in result.stdout
    assert "[load 2/2] client_side_weighted_round_robin: b1 now 400/s" in result.stdout
    assert "✓ 2/2 capacity settings matched the prediction (load-aware step" in result.stdout
    assert "[adaptive 1/2] weighted_round_robin + adaptive_weights" in result.stdout
    assert "✓ 2/2 capacity settings matched the prediction (adaptive step" in result.stdout
    assert "✗" not in result.stdout
    document = json.loads(report.read_text())
    check_failure_scene(document["failure"], 90)
    check_load_step(document["load"])
    adaptive = check_adaptive_step(document["adaptive"])
    by_policy = {s["policy"]: s for s in document["strategies"]}
    assert list(by_policy) == list(STRATEGIES)
    for strategy in document["strategies"]:
        assert strategy["requests"] == N
        assert strategy["errors"] == 0
        assert sum(counts(strategy).values()) == N
    assert counts(by_policy["round_robin"]).keys() == WEIGHT_SHARES.keys()
    assert all(abs(c - N / 3) <= 1.5 for c in counts(by_policy["round_robin"]).values())
    for name in ("weighted_round_robin", "least_request"):
        got = counts(by_policy[name])
        assert all(abs(got[b] - N * p) <= 1.5 for b, p in WEIGHT_SHARES.items()), (name, got)
    weighted_random = counts(by_policy["weighted_random"])
    for backend, p in WEIGHT_SHARES.items():
        assert abs(weighted_random[backend] - N * p) <= sigma_bound(N, p), weighted_random
    assert abs(weighted_random["b3"] - N / 3) > sigma_bound(N, 0.7)  # not uniform
    for name in ("ring_hash", "maglev", "source_ip_hash"):
        assert by_policy[name]["on_predicted"] == N, by_policy[name]
        assert len([c for c in counts(by_policy[name]).values() if c]) >= 2  # a real spread
    children = document["children"]
    assert {c["name"] for c in children} >= {"etcd", "envoy", "control plane (xdscp serve)"}
    assert len(children) == 6
    assert not [c for c in children if pid_alive(c["pid"])]
    ports = [p for c in children for p in c["ports"].values()]
    assert not [p for p in ports if port_open(p)]
    print(f"demo --once --requests {N}: {elapsed:.1f} s; {adaptive}")


def test_once_over_delta_xds_matches_every_prediction(tmp_path: Path) -> None:
    """`--delta`: the same tour with Envoy on incremental xDS; every strategy's split is
    judged as matching (the demo exits non-zero otherwise) and hash policies land request
    for request."""
    report = tmp_path / "report.json"
    result = run_demo("--once", "--delta", "--requests", "100", "--report", str(report),
                      tmp=tmp_path, timeout=TOUR_TIMEOUT_S)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    strategies = document["strategies"]
    check_failure_scene(document["failure"], 90)
    check_load_step(document["load"])
    print(f"demo --once --delta: {check_adaptive_step(document['adaptive'])}")
    assert [s["policy"] for s in strategies] == list(STRATEGIES)
    assert all(s["errors"] == 0 and sum(counts(s).values()) == 100 for s in strategies)
    hashed = [s for s in strategies if s["policy"] in ("ring_hash", "maglev", "source_ip_hash")]
    assert all(s["on_predicted"] == 100 for s in hashed)


def test_adaptive_step_right_after_the_failure_scene(tmp_path: Path) -> None:
    """`--no-load-step`: the adaptive step follows the failure scene (whose load reports, b2's
    errors included, are the last Envoy sent) and still converges and matches; the report
    says the load-aware step did not run."""
    report = tmp_path / "report.json"
    result = run_demo("--once", "--no-load-step", "--requests", "30", "--report", str(report),
                      tmp=tmp_path, timeout=TOUR_TIMEOUT_S)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[load 1/2]" not in result.stdout
    document = json.loads(report.read_text())
    assert document["load"] is None
    print(f"demo --once --no-load-step: {check_adaptive_step(document['adaptive'])}")


def test_busy_port_fails_at_once_saying_what_why_and_how(tmp_path: Path) -> None:
    """A listener port already taken: the demo starts nothing and names the port, its role,
    the reason and the flag to change."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_demo("--once", "--listener-port", str(port), tmp=tmp_path, timeout=30)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (the Envoy listener) is not available" in result.stderr
    assert "why: " in result.stderr
    assert "--listener-port" in result.stderr
    assert "✓" not in result.stdout  # nothing was started


def test_missing_envoy_binary_fails_clearly(tmp_path: Path) -> None:
    """An Envoy binary that does not exist: what, why, and what to do."""
    missing = tmp_path / "no-such-envoy"
    result = run_demo("--once", "--envoy-bin", str(missing), tmp=tmp_path, timeout=30)
    assert result.returncode == 1
    assert "the Envoy binary was not found" in result.stderr
    assert f"{missing} (given with --envoy-bin PATH) does not exist" in result.stderr
    assert "fix: " in result.stderr


def test_etcd_that_cannot_start_stops_the_others_and_says_why(tmp_path: Path) -> None:
    """An etcd that exits at once (`false`): the demo fails with etcd's exit status and the
    children already started (backends, control plane) are stopped."""
    result = run_demo("--once", "--etcd-bin", "/bin/false", tmp=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "the embedded etcd did not start" in result.stderr
    assert "etcd exited with 1" in result.stderr
    assert "stopped 5 processes" in result.stdout


def read_until(stream: IO[str], marker: str, timeout: float) -> str:
    """Lines of `stream` up to and including the one holding `marker`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed:\n{''.join(seen)}")


def backend_of(port: int, headers: dict[str, str] | None = None) -> str:
    """The backend answering one GET through Envoy on 127.0.0.1:port (Host: web)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "web", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.getheader("x-backend") or f"status:{response.status}"
    finally:
        conn.close()


def status_of(port: int) -> int:
    """The status of one GET through Envoy on 127.0.0.1:port (Host: web)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "web"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def read_text(url: str) -> str:
    """GET `url`; its body."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def post(url: str) -> dict[str, Any]:
    """POST to a demo backend's /_demo/ URL; its JSON answer."""
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as answer:
        return dict(json.loads(answer.read()))


def check_printed_failure_commands(printed: str, port: int) -> None:
    """The printed failure commands work: b2 fails, the printed outlier detection + retries
    policy reaches Envoy (requests stop failing), Envoy's printed stats count b2's ejection,
    and b2 recovers."""
    urls = re.findall(r"curl -X POST '?(http://127\.0\.0\.1:\d+/_demo/\w+[^'\s]*)", printed)
    fail, recover = urls
    stats_url = re.findall(r"curl -s '(http://127\.0\.0\.1:\d+/stats\?filter=outlier)'", printed)
    policy_set = next(line for line in printed.splitlines() if "--consecutive-5xx" in line)
    assert post(fail)["status"] == 503
    subprocess.run(shlex.split(policy_set), check=True, capture_output=True, timeout=30)
    ejected = "cluster.web.outlier_detection.ejections_enforced_total: 1"
    deadline = time.monotonic() + 20
    while ejected not in read_text(stats_url[0]).splitlines():  # Envoy ejects b2
        status_of(port)
        assert time.monotonic() < deadline, "printed outlier policy did not eject b2"
    assert [status_of(port) for _ in range(30)] == [200] * 30
    assert post(recover)["status"] == 0


def test_stays_up_with_working_commands_until_sigint(tmp_path: Path) -> None:
    """Without --once the demo stays up and prints commands with its real ports: curl
    through Envoy gets the weighted split, the printed `policy set` makes a user stick to one
    backend; SIGINT then stops every child and the demo exits 0."""
    with demo_session("--requests", "20", tmp=tmp_path) as process:
        assert process.stdout is not None
        printed = read_until(process.stdout, "Ctrl-C stops every process", timeout=TOUR_TIMEOUT_S)
        port = int(re.findall(r"curl -H 'Host: web' http://127\.0\.0\.1:(\d+)/", printed)[0])
        split = Counter(backend_of(port) for _ in range(20))
        assert all(abs(split[b] - 20 * p) <= 1 for b, p in WEIGHT_SHARES.items()), split
        policy_set = next(line for line in printed.splitlines() if "--lb maglev" in line)
        subprocess.run(shlex.split(policy_set), check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        # Weighted round robin spreads any 10 requests in a row over 2-3 backends; once
        # Maglev hashes x-user, all of alice's requests go to one backend.
        while len({backend_of(port, {"x-user": "alice"}) for _ in range(10)}) != 1:
            assert time.monotonic() < deadline, "printed policy set not applied"
        check_printed_failure_commands(printed, port)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "stopped 6 processes" in rest
    assert not session_members(process.pid)


def test_listener_port_taken_after_the_check_fails_with_envoys_reason(tmp_path: Path) -> None:
    """The listener port is free when the demo checks it and taken before Envoy binds it
    (after the control plane is up): Envoy's rejection is reported with its reason and
    every child is stopped."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "demo", "--once", "--listener-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        read_until(process.stdout, "control plane", timeout=60)  # Envoy starts next
        with socket.socket() as busy:
            try:
                busy.bind(("127.0.0.1", port))
            except OSError:
                pytest.skip("Envoy bound the port before the test could take it")
            busy.listen()
            rest, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    assert process.returncode == 1, rest + stderr
    assert f"Envoy could not open its listener on 127.0.0.1:{port}" in stderr
    assert "Address already in use" in stderr
    assert "--listener-port" in stderr
    assert "stopped 6 processes" in rest
    assert not session_members(process.pid)


def test_sigterm_during_the_tour_stops_every_child(tmp_path: Path) -> None:
    """SIGTERM while the tour runs (after its first strategy's table): the demo stops at once,
    every child with it, and ends by that signal with one line and no traceback; its work
    directory is removed."""
    with demo_session("--once", "--requests", "20", tmp=tmp_path) as process:
        assert process.stdout is not None
        read_until(process.stdout, "[1/8] round_robin", timeout=90)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, rest
    assert "Traceback" not in rest, rest
    assert rest.rstrip().splitlines()[-1] == "xdscp: stopped by SIGTERM", rest
    assert "stopped 6 processes" in rest
    assert not session_members(process.pid)
    assert list(tmp_path.glob("xdscp-demo-*")) == []
