"""`xdscp simulate` on a service with routes: the route a request takes (`--path`,
`--header`), its clusters' and endpoints' shares, and a target that is not in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from xdscp.cli import main
from xdscp.cli.simulate_routes import parse_request
from xdscp.errors import ValidationError

SERVICES = """\
services:
  web:
    endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}]
    routes:
      - match: {headers: [{name: x-canary, exact: "1"}]}
        cluster: web-v2
      - match: {prefix: /gone/}
        cluster: absent
      - match: {path: /old}
        split: {web-v2: 1, absent: 5}
      - split: {web: 3, web-v2: 1}
  web-v2:
    endpoints: [{address: 10.0.1.1, port: 80}]
"""


def _run(tmp_path: Path, *args: str) -> str:
    file = tmp_path / "services.yaml"
    file.write_text(SERVICES)
    result = CliRunner().invoke(
        main,
        ["simulate", "--file", str(file), "--service", "web", "--seed", "0", "--requests",
         "1000", *args],
        terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def _row(output: str, *cells: str) -> list[str]:
    for line in output.splitlines():
        parts = [p.strip() for p in line.strip("│ ").split("│")]
        if parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row {cells} in\n{output}")


def test_default_request_takes_the_split(tmp_path: Path) -> None:
    """`/` without headers meets only the catch-all split: web 75 %, web-v2 25 %, and web's
    two endpoints half of web's share each; the absent target is named."""
    out = _run(tmp_path)
    assert "absent not served" in out
    assert "routes[2] of 3 served" in out  # the /gone/ route is dropped
    assert _row(out, "web", "3")[2] == "75.0"
    assert _row(out, "web-v2", "1")[2] == "25.0"
    assert _row(out, "web", "10.0.0.1:80")[2:] == ["50.0", "37.5"]
    assert _row(out, "web-v2", "10.0.1.1:80")[2:] == ["100.0", "25.0"]


def test_header_and_path_pick_their_route(tmp_path: Path) -> None:
    """A header route wins over the rest; a split whose other target is absent keeps the
    served one (all its share)."""
    out = _run(tmp_path, "--header", "X-Canary=1", "--path", "/old")
    assert "routes[0] of 3 served" in out
    assert _row(out, "web-v2", "10.0.1.1:80")[2:] == ["100.0", "100.0"]
    out = _run(tmp_path, "--path", "/old?x=1")
    assert "routes[1] of 3 served" in out
    assert _row(out, "web-v2", "1")[2] == "100.0"


def test_hot_key_with_routes_is_refused(tmp_path: Path) -> None:
    """--hot-key is for one cluster: with routes it is an error, not silently ignored."""
    file = tmp_path / "services.yaml"
    file.write_text(SERVICES)
    args = ["simulate", "--file", str(file), "--service", "web", "--hot-key", "k"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "hot-key: is for a service without routes" in result.output


def test_bad_request_is_refused() -> None:
    """A path must start with '/', a header be NAME=VALUE; header names fold to lower case."""
    assert parse_request(None, ("X-A=b=c",)) == ("/", {"x-a": "b=c"})
    for path, headers in (("x", ()), ("/", ("novalue",)), ("/", ("=v",))):
        with pytest.raises(ValidationError):
            parse_request(path, headers)
