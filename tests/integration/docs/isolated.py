"""Shell scripts run in their own network and mount namespaces (`unshare --net --mount`), so
the documentation's commands use its default ports (2379, 18000, 18001, 10000, 9901, 808x)
without meeting any other test; every process they leave is stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.paths import ROOT

VENV_BIN = ROOT / ".venv" / "bin"
# Loopback up, and a private /dev/shm: Envoy's default base id keeps its hot-restart memory
# there, which another Envoy on the machine could hold.
_ENTER = 'ip link set lo up && mount -t tmpfs tmpfs /dev/shm && exec bash -e "$0"'
ETCD_PRELUDE = """\
etcd --data-dir "$(mktemp -d)" > etcd.log 2>&1 &
curl -sf --retry 30 --retry-connrefused http://127.0.0.1:2379/health > /dev/null
"""


@dataclass(frozen=True, slots=True)
class Ran:
    """A finished script: its exit status and its output (stdout and stderr)."""

    status: int
    output: str


def isolation_problem() -> str | None:
    """Why scripts cannot run isolated here (not root, no unshare), or None."""
    try:
        probe = subprocess.run(
            ["unshare", "--net", "--mount", "--", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare cannot run: {exc}"
    if probe.returncode != 0:
        return f"unshare --net --mount is not permitted: {probe.stderr.decode().strip()}"
    return None


def plain_path() -> str:
    """The PATH without the project's venv (the README's own activate puts it back)."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in parts if Path(p).resolve() != VENV_BIN.resolve())


def _stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the script's process group, wait until it is gone (SIGKILL after grace_s)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def run_isolated(script: str, cwd: Path, env: dict[str, str], timeout_s: float = 240) -> Ran:
    """Run `script` with `bash -e` (the shell users type) in `cwd`, isolated; then stop
    whatever it left running."""
    path = cwd / "script.sh"
    path.write_text(script)
    log = cwd / "script.out"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["unshare", "--net", "--mount", "--", "sh", "-c", _ENTER, str(path)],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            status = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            status = -1
        finally:
            _stop_group(process.pid, grace_s=30.0)
            process.wait()
    return Ran(status, log.read_text(errors="replace"))


def logs(cwd: Path) -> str:
    """The tail of every *.log the script wrote (for a failure message)."""
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(cwd.glob("*.log"))
    )
