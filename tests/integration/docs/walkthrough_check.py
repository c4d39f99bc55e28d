"""Run inside the README's walk-through (after its steps, before it stops everything):
the hosts Envoy holds, the registrations and policy etcd holds, and the README's failure
policy measured on a fresh ejection of b3. Writes its findings as JSON to argv[1].

    python walkthrough_check.py OUT.json

Every wait polls the state itself with a generous deadline (Envoy's admin, the backend's
counters); nothing waits on a fixed delay.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ENVOY = "http://127.0.0.1:10000/"
ENVOY_ADMIN = "http://127.0.0.1:9901"
B2, B3 = "127.0.0.1:8082", "127.0.0.1:8083"
DEADLINE_S = 90.0
_HOST = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+")  # /clusters also has web::default_priority::...


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post(url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as a:
        return json.loads(a.read())


def envoy_hosts() -> dict[str, dict[str, str]]:
    """Envoy's /clusters for `web`: host → {"weight": ..., "health_flags": ...}."""
    hosts: dict[str, dict[str, str]] = {}
    for line in _get(f"{ENVOY_ADMIN}/clusters")[1].splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0] == "web" and _HOST.fullmatch(parts[1]):
            hosts.setdefault(parts[1], {})[parts[2]] = parts[3]
    return hosts


def _until(what: str, condition: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"walkthrough_check: {what} not reached in {DEADLINE_S:.0f} s")
        time.sleep(0.05)
    return value


def _ejected(hosts: dict[str, dict[str, str]], host: str) -> bool:
    return "failed_outlier_check" in hosts.get(host, {}).get("health_flags", "")


def _failed() -> int:
    """How many requests b3 has failed (its own counter)."""
    return int(json.loads(_get(f"http://{B3}/_demo/counts")[1])["failed"])


def measure_ejection() -> dict[str, Any]:
    """b3, never ejected before, fails once the README's b2 is back in rotation: requests
    until Envoy ejects it, then 30 requests while it is ejected."""
    _until("b2 back in rotation", lambda: not _ejected(envoy_hosts(), B2))
    _post(f"http://{B3}/_demo/fail?status=503")
    failed_before = _failed()
    statuses = []

    def ejected_now() -> bool:
        statuses.append(_get(ENVOY, {"Host": "web"})[0])
        return _ejected(envoy_hosts(), B3)

    _until("b3 ejected", ejected_now)
    failed_until = _failed() - failed_before
    flags_before = envoy_hosts()
    batch = [_get(ENVOY, {"Host": "web"})[0] for _ in range(30)]
    flags_after = envoy_hosts()
    still = _ejected(flags_after, B3)
    stats = _get(f"{ENVOY_ADMIN}/stats?filter=cluster.web.(outlier|upstream_rq_retry|lb_)")[1]
    received = _failed() - failed_before - failed_until
    _post(f"http://{B3}/_demo/recover")
    return {
        "until_ejected": statuses, "failed_until_ejected": failed_until, "batch": batch,
        "still_ejected": still, "received_while_ejected": received,
        "hosts_before": flags_before, "hosts_after": flags_after, "stats": stats,
    }  # fmt: skip


def main(out: str) -> int:
    _until("3 hosts in Envoy", lambda: len(envoy_hosts()) == 3)
    shown = subprocess.run(
        ["xdscp", "policy", "show", "web"], capture_output=True, text=True, check=True
    ).stdout
    registered = subprocess.run(
        ["etcdctl", "get", "--prefix", "/xdscp/services/web/", "--print-value-only"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    values = [json.loads(line) for line in registered.splitlines() if line.strip()]
    findings = {
        "hosts": sorted(envoy_hosts()),
        "weights": {f"{v['address']}:{v['port']}": v["weight"] for v in values},
        "policy": json.loads(shown)["policy"],
        "ejection": measure_ejection(),
    }
    with open(out, "w") as file:
        json.dump(findings, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
