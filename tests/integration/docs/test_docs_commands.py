"""Every ```sh block of README.md and docs/*.md is run by a test as written, or listed here
(by its exact text) with the test that covers it: a new or changed block fails
`test_every_sh_block_is_run_or_covered` until it is one or the other.

The README's first read ("Install", "First steps, by hand") runs literally, in order, in one
shell, inside its own network namespace so its default ports meet no other test; a checker
then measures what it built (Envoy's hosts and weights, the stored policy, a fresh ejection of
a backend under the README's failure policy) before the README's own last line stops everything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.docs.blocks import (
    DOCUMENTS,
    FORBIDDEN_LANGUAGES,
    ROOT,
    Block,
    fenced_blocks,
    readme_section,
    sh_blocks,
)
from tests.integration.docs.isolated import (
    ETCD_PRELUDE,
    VENV_BIN,
    isolation_problem,
    logs,
    plain_path,
    run_isolated,
)
from xdscp.demo.failure import GUARDED, GUARDED_FLAGS
from xdscp.registry import policy_value

pytestmark = [
    pytest.mark.etcd, pytest.mark.envoy, pytest.mark.grpc, pytest.mark.slow,
    pytest.mark.requires("curl"),
]  # fmt: skip

HERE = "tests/integration/docs/test_docs_commands.py"
GUARDED_COMMAND = f"xdscp policy set web {GUARDED_FLAGS}\n"
# Blocks run elsewhere, by their exact text → the test that runs or covers them.
COVERED = {
    "make demo   # etcd + xdscp + Envoy + 3 backends on loopback: every strategy, measured vs"
    " predicted\nmake test   # the whole test suite (unit tests and real Envoy / etcd"
    " integration tests)\n":
        "tests/integration/demo/test_demo.py::test_stays_up_with_working_commands_until_sigint",
    "xdscp serve --etcd http://127.0.0.1:2379 --grpc-target greeter &   # greeter/<id> keys"
    " feed `greeter`\nxdscp list --grpc-target greeter\n":
        f"{HERE}::test_grpc_go_target_block_as_written",
    GUARDED_COMMAND: f"{HERE}::test_first_steps_run_as_written",
    "xdscp deregister api 10.0.0.7:8080 --drain 10   # DRAINING for 10 s (lease kept), then"
    " deleted\nxdscp register api 10.0.0.7:8080 --drain 5      # on SIGINT/SIGTERM: DRAINING"
    " 5 s, then revoke\n":
        "tests/integration/grpc/test_drain_cli.py::test_cli_deregister_drain_fails_no_request"
        "_through_envoy_or_grpc_go",
    "make lint        # ruff + mypy --strict\nmake test-fast   # unit tests only (no Envoy,"
    " etcd, Go or gRPC client processes)\nmake e2e-compose # the docker-compose suite (Docker"
    " from Debian, a private engine if needed)\nmake bench       # benchmarks, each beside a"
    " baseline measured in the same run (BENCHMARKS.md)\n":
        f"{HERE}::test_development_make_targets_exist",
    "xdscp serve --etcd http://127.0.0.1:2379          # services registered in etcd\n"
    "xdscp serve --static services.yaml                 # or declared in a file (re-read on"
    " change)\nxdscp serve --dns-config dns.yaml --etcd http://127.0.0.1:2379   # sources"
    " combine\nxdscp bootstrap envoy --node-id edge-1 --xds 127.0.0.1:18000 > envoy.json &&"
    " envoy -c envoy.json\ncurl -H 'Host: web' http://127.0.0.1:10000/        # Envoy routes"
    " by Host: one virtual host per service\n":
        "tests/integration/server/test_serve.py::test_serve_static_file_reload_keeps_last_good"
        "_and_stops_on_sigterm",
    "make try                                          # build the runtime image, start the"
    " stack\ncurl -H 'Host: web' http://127.0.0.1:10000/       # backends a and b in turn"
    " (round robin)\nxdscp policy set web --lb weighted_round_robin    # etcd is on"
    " 127.0.0.1:2379: now 1:3\nmake try-down                                     # stop and"
    " remove everything\n":
        "tests/quickstart/test_quickstart_stack.py::test_weighted_round_robin_follows_the_weights",
}  # fmt: skip
FIRST_STEPS = "First steps, by hand"
GRPC_GO = "Endpoints registered by grpc-go"
# Blocks of commands that start no process and need nothing running: run as they are.
_PURE = re.compile(r"^\s*(#.*|xdscp (simulate|bootstrap) .*|export \w+=.*|\s+--.*)?$")


def _pure(block: Block) -> bool:
    return all(_PURE.match(line) for line in block.text.splitlines())


def _needs_etcd(block: Block) -> bool:
    """docs/ blocks of registry, policy and route commands: run beside an etcd of their own."""
    return block.path.parent.name == "docs" and block.text.startswith(
        ("xdscp register", "xdscp policy set", "xdscp route set")
    )


def _executed(block: Block) -> str | None:
    """The test that runs `block` as written, or None."""
    if block.path.name == "README.md" and block.section in ("Install", FIRST_STEPS):
        return f"{HERE}::test_first_steps_run_as_written"
    if _pure(block):
        return f"{HERE}::test_pure_blocks_run_as_written"
    if _needs_etcd(block):
        return f"{HERE}::test_etcd_blocks_run_as_written"
    return None


def _test_exists(test_id: str) -> bool:
    path, _, name = test_id.partition("::")
    text = (ROOT / path).read_text()
    return re.search(rf"^(async )?def {re.escape(name)}\(", text, re.MULTILINE) is not None


def test_every_sh_block_is_run_or_covered() -> None:
    """Each ```sh block is run by a test here or listed in COVERED with an existing test;
    COVERED names no block that is gone; no shell block hides behind another language."""
    blocks = sh_blocks()
    unknown = [b.where for b in blocks if _executed(b) is None and b.text not in COVERED]
    assert unknown == [], f"run these blocks in a test, or list them in COVERED: {unknown}"
    texts = {b.text for b in blocks}
    stale = [text[:60] for text in COVERED if text not in texts]
    assert stale == [], f"COVERED lists blocks no document has: {stale}"
    missing = [t for t in {*COVERED.values()} if not _test_exists(t)]
    assert missing == [], missing
    hidden = [
        b.where for p in DOCUMENTS for b in fenced_blocks(p) if b.language in FORBIDDEN_LANGUAGES
    ]
    assert hidden == [], f"write shell commands as ```sh: {hidden}"


def test_the_readme_failure_policy_is_the_demos() -> None:
    """The README's failure-scene command is exactly the policy `xdscp demo` measures."""
    readme = [b.text for b in readme_section(FIRST_STEPS)]
    assert any(GUARDED_COMMAND in text for text in readme)


def _env(tmp_path: Path, *, venv: bool) -> dict[str, str]:
    path = plain_path() if not venv else f"{VENV_BIN}{os.pathsep}{plain_path()}"
    return {**os.environ, "PATH": path, "TMPDIR": str(tmp_path), "COLUMNS": "200"}


@pytest.fixture
def isolated(tmp_path: Path) -> Path:
    """A work folder (with `examples` linked in) for a script run in its own namespaces;
    the test is skipped, saying why, where namespaces cannot be made."""
    problem = isolation_problem()
    if problem is not None:
        pytest.skip(problem)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def test_first_steps_run_as_written(isolated: Path) -> None:
    """The README's Install block (in the repository) and every First-steps block, in order,
    in one shell; then the checker: the three registrations are in etcd with their weights
    and in Envoy, the stored policy is the demo's, and under it Envoy ejects a failing
    backend (b3; b2 was ejected by the README's own loop) after its 3 failures, which
    retries hide, with no overflow; the gRPC
    client's three calls reach b1; the README's last line stops everything."""
    if subprocess.run(["make", "-q", "venv"], cwd=ROOT, check=False).returncode != 0:
        pytest.skip("the venv is out of date: run `make venv` first")
    (install,) = readme_section("Install")
    steps = [b.text for b in readme_section(FIRST_STEPS) if b.text not in COVERED]
    assert steps[-1] == "kill $(jobs -p)\n"
    findings = isolated / "findings.json"
    check = ROOT / "tests" / "integration" / "docs" / "walkthrough_check.py"
    script = (
        f"cd {ROOT}\n{install.text}cd {isolated}\n{''.join(steps[:-1])}"
        f"python {check} {findings}\n{steps[-1]}"
    )
    ran = run_isolated(script, isolated, _env(isolated, venv=False), timeout_s=400)
    assert ran.status == 0, f"{ran.output[-4000:]}\n{logs(isolated)}"
    assert "b1\nb1\nb1\n" in ran.output  # the gRPC client's calls
    found = json.loads(findings.read_text())
    assert found["hosts"] == ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
    assert found["weights"] == {"127.0.0.1:8081": 1, "127.0.0.1:8082": 2, "127.0.0.1:8083": 7}
    assert found["policy"] == json.loads(policy_value(GUARDED))
    ejection = found["ejection"]
    shown = {k: v for k, v in ejection.items() if k not in ("hosts_before", "hosts_after", "stats")}
    print(f"\nREADME walk-through, b3 failing under the README's policy: {shown}")
    assert 3 <= ejection["failed_until_ejected"] <= 4
    assert set(ejection["until_ejected"]) == {200}
    assert ejection["batch"] == [200] * 30  # whatever reaches b3 is retried elsewhere
    assert ejection["still_ejected"]
    enforced = re.search(r"ejections_enforced_total: (\d+)", ejection["stats"])
    assert enforced is not None
    assert int(enforced.group(1)) >= 1  # b3 (and b2, if the README's own loop ejected it)
    assert "ejections_overflow: 0" in ejection["stats"]
    # b3 fails after b2 came back. Under Envoy's default update_merge_window (1 s; xdscp's
    # clusters set 0), an ejection within a second of b2's return reached the workers a
    # second late, and b3 kept half of a batch sent meanwhile: tests/integration/envoy/
    # test_ejection_envoy.py::test_a_second_ejection_keeps_the_host_out.
    assert ejection["received_while_ejected"] == 0


def test_grpc_go_target_block_as_written(isolated: Path) -> None:
    """An endpoint registered in grpc-go's format is listed and served only with
    `--grpc-target`: the README's block (serve with the target, `list --grpc-target`) shows
    and serves it; `xdscp list` without the target shows nothing."""
    (block,) = [b for b in readme_section(GRPC_GO) if "--grpc-target" in b.text]
    script = f"""{ETCD_PRELUDE}
xdscp register greeter 127.0.0.1:9092 --format grpc-go > register.log 2>&1 &
echo "without the target:"; xdscp list; echo "with the target:"
{block.text}curl -sf --retry 30 --retry-connrefused http://127.0.0.1:18001/readyz > /dev/null
curl -s http://127.0.0.1:18001/api/services > services.json
kill $(jobs -p)
"""
    ran = run_isolated(script, isolated, _env(isolated, venv=True))
    assert ran.status == 0, f"{ran.output[-3000:]}\n{logs(isolated)}"
    without, _, listed = ran.output.partition("without the target:")[2].partition("with the")
    assert "127.0.0.1:9092" not in without
    assert "127.0.0.1:9092" in listed
    services = json.loads((isolated / "services.json").read_text())["services"]
    greeter = [s for s in services if s["name"] == "greeter"]
    assert [(e["address"], e["port"]) for e in greeter[0]["endpoints"]] == [("127.0.0.1", 9092)]


def test_pure_blocks_run_as_written(isolated: Path) -> None:
    """`xdscp simulate` and `xdscp bootstrap` blocks: each exits 0, in a folder holding
    `examples/`."""
    blocks = [b for b in sh_blocks() if _executed(b) == f"{HERE}::test_pure_blocks_run_as_written"]
    assert blocks
    for block in blocks:
        ran = subprocess.run(
            ["sh", "-e", "-c", block.text], cwd=isolated, env=_env(isolated, venv=True),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, f"{block.where}: {ran.stderr[-2000:]}"


def test_etcd_blocks_run_as_written(isolated: Path) -> None:
    """docs/ blocks of `register` / `policy set` / `route set` commands, each beside an etcd
    of its own."""
    blocks = [b for b in sh_blocks() if _executed(b) == f"{HERE}::test_etcd_blocks_run_as_written"]
    assert blocks
    for block in blocks:
        ran = run_isolated(
            f"{ETCD_PRELUDE}{block.text}kill $(jobs -p)\n", isolated, _env(isolated, venv=True)
        )
        assert ran.status == 0, f"{block.where}: {ran.output[-3000:]}\n{logs(isolated)}"


def test_development_make_targets_exist() -> None:
    """The make targets docs/development.md names exist (dry run: nothing is built)."""
    ran = subprocess.run(
        ["make", "-n", "lint", "test-fast", "e2e-compose", "bench"], cwd=ROOT,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
