"""`xdscp serve --static FILE`: a file that does not validate at start stops serve at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BAD = "services:\n  web:\n    endpoints:\n      - {address: 10.0.0.1, port: 80, weight: 0}\n"


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "xdscp", "serve", "--xds", "127.0.0.1:0"]
    # The timeout only guards against the old behaviour (serving forever, /readyz 503).
    return subprocess.run(
        [*command, "--admin", "127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_invalid_static_file_exits_with_its_line(tmp_path: Path) -> None:
    """One line naming the file, its line, the service, the endpoint's index; exit 1."""
    path = tmp_path / "services.yaml"
    path.write_text(BAD)
    result = _serve("--static", str(path))
    assert result.returncode == 1
    expected = f"Error: {path}:4: services.web.endpoints[0].weight: must be in [1, 4294967295]"
    assert result.stderr == f"{expected}, got 0\n"
    assert result.stdout == ""


def test_an_unreadable_static_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_bytes(b"services:\n  \xff: {}\n")
    result = _serve("--static", str(path))
    assert result.returncode == 2
    assert f"cannot read {path}" in result.stderr
    assert "Traceback" not in result.stderr
