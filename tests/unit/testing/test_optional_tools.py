"""A test that needs an optional tool the machine lacks is skipped before any fixture runs:
pytest is run on such tests with the tool hidden from PATH, and must report them skipped,
with no error and no fixture set up (`--setup-show` prints none)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.requirements import TOOLS
from tests.harness.paths import ROOT

CASES = [
    ("tests/integration/dashboard/test_browser.py", "chromium"),
    ("tests/integration/server/test_metrics_lint.py", "promtool"),
    ("tests/integration/etcd/test_go_interop.py", "go"),
    ("tests/integration/grpc/test_grpc_go.py", "go"),
]


def path_without(tool: str, farm: Path) -> str:
    """A PATH of one folder linking every executable of the current PATH but `tool`."""
    farm.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        entries = sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []
        for entry in entries:
            link = farm / entry.name
            if entry.name != tool and not link.exists() and os.access(entry, os.X_OK):
                link.symlink_to(entry)
    return str(farm)


@pytest.mark.parametrize(("test_file", "tool"), CASES)
def test_missing_tool_skips_before_any_fixture(test_file: str, tool: str, tmp_path: Path) -> None:
    """Every test of the file is skipped naming the tool and its package; nothing is set up
    (no etcd, serve or Envoy started and then stopped at once), nothing errors."""
    env = {**os.environ, "PATH": path_without(tool, tmp_path / "bin"), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", test_file, "-p", "no:cacheprovider", "--setup-show",
         "-rs", "-o", "addopts=--strict-markers"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    summary = out.strip().splitlines()[-1]
    assert result.returncode == 0, out[-3000:]
    assert " skipped" in summary, summary
    for outcome in ("passed", "failed", "error"):
        assert outcome not in summary, summary
    assert "SETUP" not in out, out[-3000:]
    assert f"not installed ({tool}: {TOOLS[tool]})" in out
