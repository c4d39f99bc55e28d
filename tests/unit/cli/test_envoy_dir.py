"""The bootstraps checked in under envoy/ are exactly what `xdscp bootstrap envoy` prints."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from click.testing import CliRunner

from tests.harness.paths import ROOT
from xdscp.cli import main
from xdscp.procs import find_binary

ENVOY_DIR = ROOT / "envoy"
_ROW = re.compile(r"^\| `(?P<file>[\w.]+)` \|.*\| `xdscp (?P<args>[^`]+)` \|$", re.MULTILINE)


def _documented() -> list[tuple[str, list[str]]]:
    text = (ENVOY_DIR / "README.md").read_text()
    return [(m["file"], shlex.split(m["args"])) for m in _ROW.finditer(text)]


def test_every_checked_in_bootstrap_is_documented() -> None:
    """Each YAML file under envoy/ has a row in envoy/README.md with the command that made it."""
    files = sorted(p.name for p in ENVOY_DIR.glob("*.yaml"))
    assert files
    assert sorted(name for name, _ in _documented()) == files


@pytest.mark.parametrize(("name", "args"), _documented())
def test_checked_in_bootstrap_matches_the_command(name: str, args: list[str]) -> None:
    """Regenerating with the documented command gives the checked-in bytes."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == (ENVOY_DIR / name).read_text()


@pytest.mark.envoy
@pytest.mark.parametrize("name", sorted(p.name for p in ENVOY_DIR.glob("*.yaml")))
def test_checked_in_bootstrap_validates(name: str) -> None:
    """A real Envoy accepts each checked-in bootstrap."""
    done = subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(ENVOY_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
