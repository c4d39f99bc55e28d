"""Least request under load: a slow host holding active requests is avoided as the reference
predicts.

Method: the `slow` backend holds every request for SLOW_DELAY_S, longer than any test runs,
so what is pinned on it stays pinned. Background "pin" requests (no route timeout) are sent
one at a time, each followed until it has landed (a fast host answered it, or Envoy counts
it active on the slow host), until Envoy's own `/clusters` counts the wanted number of
active requests on the slow host. Then sequential foreground requests measure the split:
their route times out after 100 ms, so a pick of the slow host returns 504 quickly and
leaves its active count unchanged. The route names the upstream in `x-upstream`, so a 504
is counted for the host that was picked, whichever it is (a fast host too slow for 100 ms
on a loaded machine is still the host Envoy chose). The reference balancer is given the
same active counts.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter

import pytest

from tests.harness.parity import Backends, Case, Client, EnvoyFactory, counts, listener_ports
from tests.harness.stats import assert_shares, reference, shares
from tests.integration.parity.protos import Ep, cla, enum_cluster
from xdscp.balancer import sequential_picks
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import wait_until

pytestmark = pytest.mark.envoy

FOREGROUND = {"x-foreground": "1"}
FOREGROUND_ROUTE = {
    "match": {"prefix": "/", "headers": [{"name": "x-foreground", "present_match": True}]},
    "route": {"timeout": "0.1s"},
    "response_headers_to_add": [
        {"header": {"key": "x-upstream", "value": "%UPSTREAM_REMOTE_ADDRESS%"}}
    ],
}
MAX_PIN_ATTEMPTS = 300
LANDING_LIMIT_S = 30.0  # a bound on waiting for a pin to land, not a condition


def _pin_once(port: int, done: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/pin")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass  # Envoy stopped at teardown while this request was parked on the slow host
    finally:
        conn.close()
        done.set()


def _rq_active(envoy: EnvoyProcess, cluster: str) -> dict[int, int]:
    """Envoy's own active-request count per host port (`/clusters`)."""
    active = {}
    for line in envoy.admin("/clusters").splitlines():
        name, _, rest = line.partition("::127.0.0.1:")
        port, _, stat = rest.partition("::rq_active::")
        if name == cluster and stat:
            active[int(port)] = int(stat)
    return active


def _pin(envoy: EnvoyProcess, case: Case, slow_port: int, wanted: int) -> None:
    """Send pins one at a time, each followed until it has landed, until Envoy counts
    `wanted` active requests on the slow host; then wait until no other host has any."""
    for _ in range(MAX_PIN_ATTEMPTS):
        if _rq_active(envoy, case.name)[slow_port] >= wanted:
            break
        _pin_and_land(envoy, case, slow_port)
    wait_until(
        lambda: not any(n for p, n in _rq_active(envoy, case.name).items() if p != slow_port),
        limit=LANDING_LIMIT_S,
    )


def _pin_and_land(envoy: EnvoyProcess, case: Case, slow_port: int) -> None:
    """One pin, followed until a fast host has answered it or the slow host holds it."""
    before = _rq_active(envoy, case.name)[slow_port]
    done = threading.Event()
    threading.Thread(target=_pin_once, args=(_port(envoy, case), done), daemon=True).start()
    wait_until(
        lambda: done.is_set() or _rq_active(envoy, case.name)[slow_port] > before,
        limit=LANDING_LIMIT_S,
    )


def _port(envoy: EnvoyProcess, case: Case) -> int:
    return listener_ports(envoy)[case.name]


def _foreground(port: int, names: dict[int, str], requests: int) -> Counter[str]:
    """Sequential requests; each counted for the host Envoy picked (`x-upstream` on a 504)."""
    client = Client(port)
    try:
        picks = [client.get("/", FOREGROUND) for _ in range(requests)]
    finally:
        client.close()
    return counts(_picked(p, names) for p in picks)


def _picked(pick: str, names: dict[int, str]) -> str:
    """The backend of a pick; a timed-out one by its upstream's port (any other status as is)."""
    status, _, upstream = pick.partition("@127.0.0.1:")
    if status == "status:504" and upstream.isdigit() and int(upstream) in names:
        return names[int(upstream)]
    return pick


def _run(
    envoy_for: EnvoyFactory, case: Case, names: dict[int, str], pinned: int, requests: int
) -> Counter[str]:
    """Pin `pinned` requests on the slow host (the CLA's first endpoint), then measure."""
    envoy = envoy_for([case]).envoy
    socket = case.cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    slow_port = int(socket.port_value)
    _pin(envoy, case, slow_port, pinned)
    assert _rq_active(envoy, case.name)[slow_port] == pinned
    observed = _foreground(_port(envoy, case), names, requests)
    assert _rq_active(envoy, case.name)[slow_port] == pinned
    return observed


def _case(name: str, slow: Backends, fast: Backends, weights: tuple[int, ...]) -> Case:
    ports = (slow.ports[0], *fast.ports[: len(weights) - 1])
    endpoints = [Ep(p, w) for p, w in zip(ports, weights, strict=True)]
    return Case(
        enum_cluster(name, "LEAST_REQUEST"), cla(name, endpoints), routes=[FOREGROUND_ROUTE]
    )


def _predicted(
    case: Case, slow: Backends, fast: Backends, pinned: int, picks: int
) -> dict[str, float]:
    ref = reference(case.cluster, case.cla)
    slow_host = next(h for h in ref.hosts if h.port == slow.ports[0])
    for _ in range(pinned):
        ref.start(slow_host)
    names = {**slow.names, **fast.names}
    return shares(sequential_picks(ref, picks, lambda h: names[int(str(h).rpartition(":")[2])]))


def test_p2c_avoids_busy_host(
    envoy_for: EnvoyFactory, backends: Backends, slow_backend: Backends
) -> None:
    """Equal weights (P2C), the slow host holding 1 active request: it is chosen only when
    both samples hit it, 1/16 of requests instead of 1/4 — Envoy's split over 480 requests
    matches the reference given the same active counts (5 sigma), and excludes 1/4."""
    case = _case("p2c", slow_backend, backends, (1, 1, 1, 1))
    predicted = _predicted(case, slow_backend, backends, pinned=1, picks=20000)
    assert abs(predicted["slow"] - 1 / 16) < 0.01
    names = {**slow_backend.names, **backends.names}
    observed = _run(envoy_for, case, names, pinned=1, requests=480)
    blind = dict.fromkeys(predicted, 0.25)
    assert_shares(observed, predicted, 480, reference_picks=20000, alternative=blind)
    assert observed["slow"] < 480 / 8  # directional: well under half its weight share


def test_weighted_least_request_divides_by_active(
    envoy_for: EnvoyFactory, backends: Backends, slow_backend: Backends
) -> None:
    """Weights slow:2, 1, 2, 3 with 3 requests parked on the slow host: EDF uses
    2 / (3 + 1) = 0.5 for it, so it gets 0.5 / 6.5 of 390 requests (30, not the 25 % its
    weight gives); Envoy and the reference both land within 3 picks of that per host."""
    case = _case("wlr", slow_backend, backends, (2, 1, 2, 3))
    effective = dict(
        zip(["slow", *(backends.names[p] for p in backends.ports[:3])], (0.5, 1, 2, 3), strict=True)
    )
    exact = {name: 390 * w / 6.5 for name, w in effective.items()}
    ref = _predicted(case, slow_backend, backends, pinned=3, picks=390)
    names = {**slow_backend.names, **backends.names}
    observed = _run(envoy_for, case, names, pinned=3, requests=390)
    print("envoy", sorted(observed.items()), "reference", sorted(ref.items()), "exact", exact)
    for picked in ({k: v * 390 for k, v in ref.items()}, observed):
        for name, count in exact.items():
            assert abs(picked.get(name, 0) - count) <= 3, (dict(picked), exact)
