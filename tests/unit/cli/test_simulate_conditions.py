"""`xdscp simulate`: the services file's format, slow start, ejected hosts, a hot key."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from xdscp.cli import main


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and ":" in cells[1]:
            rows[cells[1]] = cells[2:]
    return rows


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_endpoint_written_as_in_the_services_file(tmp_path: Path) -> None:
    """`locality: {zone: a}` and `health:` are read as the static services file reads them
    (this crashed with a traceback before)."""
    path = tmp_path / "svc.yaml"
    path.write_text(
        "endpoints:\n"
        "  - {address: 10.0.0.1, port: 80, locality: {zone: a}, health: draining}\n"
        "  - {address: 10.0.0.2, port: 80, locality: {zone: a}}\n"
    )
    rows = _rows(_run("--file", str(path), "--requests", "100"))
    assert rows["10.0.0.1:80"][0] == "0"
    assert rows["10.0.0.2:80"][0] == "100"


def test_a_services_file_and_its_policy(tmp_path: Path) -> None:
    """A whole services file works; its policy (slow start included) applies."""
    path = tmp_path / "services.yaml"
    path.write_text(
        "services:\n"
        "  api:\n"
        "    policy: {lb: round_robin, slow_start: {window: 10s}}\n"
        "    endpoints:\n"
        "      - {address: 10.0.0.1, port: 80, locality: {zone: a}}\n"
        "      - {address: 10.0.0.2, port: 80, locality: {zone: b}}\n"
        "      - {address: 10.0.0.3, port: 80, locality: {zone: a}}\n"
    )
    args = ["--file", str(path), "--requests", "900", "--seed", "1"]
    rows = _rows(_run(*args, "--added", "10.0.0.3:80=5", "--at-seconds", "7.5"))
    assert [rows[f"10.0.0.{i}:80"][0] for i in (1, 2, 3)] == ["400", "400", "100"]  # 1:1:0.25
    rows = _rows(_run(*args, "--added", "10.0.0.3:80=5", "--at-seconds", "4"))
    assert "10.0.0.3:80" not in rows  # not there yet
    rows = _rows(_run(*args, "--added", "10.0.0.3:80=5", "--at-seconds", "15"))
    assert [rows[f"10.0.0.{i}:80"][0] for i in (1, 2, 3)] == ["300", "300", "300"]


def test_a_bad_file_entry_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("endpoints:\n  - {address: 10.0.0.1, port: 80, zone: a}\n")
    result = CliRunner().invoke(main, ["simulate", "--file", str(path)])
    assert result.exit_code == 1
    assert "endpoints[0].locality" in result.output
    assert "Traceback" not in result.output


def test_eject_spills_to_the_next_priority() -> None:
    endpoints = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.1.1:80:1::1"]
    args = [a for e in endpoints for a in ("--endpoint", e)]
    rows = _rows(
        _run(*args, "--eject", "10.0.0.1:80", "--eject", "10.0.0.2:80", "--requests", "1000")
    )
    assert abs(int(rows["10.0.0.3:80"][0]) - 460) <= 60
    assert abs(int(rows["10.0.1.1:80"][0]) - 540) <= 60


def test_unhealthy_endpoint_in_the_shorthand() -> None:
    endpoints = ["10.0.0.1:80:1:a:0:unhealthy", "10.0.0.2:80:1:a", "10.0.0.3:80:1:a"]
    rows = _rows(_run(*[a for e in endpoints for a in ("--endpoint", e)], "--requests", "100"))
    assert rows["10.0.0.1:80"][0] == "0"


def test_hot_key_overflows_with_a_balance_factor() -> None:
    """One key, 30 in flight, factor 150 over 4 hosts: no host ever holds more than its
    slots (ceil(ceil(30 * 1.5) / 4) = 12), so the key spills to other hosts."""
    endpoints = [a for i in range(1, 5) for a in ("--endpoint", f"10.0.0.{i}:80")]
    args = ["--policy", "ring_hash", "--hash-on", "header:x-user", *endpoints, "--hot-key", "alice"]
    bounded = _rows(_run(*args, "--concurrency", "30", "--hash-balance-factor", "150"))
    assert len(bounded) >= 2
    assert all(int(row[1]) <= 13 for row in bounded.values())
    plain = _rows(_run(*args, "--concurrency", "30"))
    assert [row[1] for row in plain.values()] == ["30"]
