"""`xdscp simulate` and the simulation functions behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.harness import model
from tests.harness.balancer import Ep, balancer, eps
from tests.harness.model import endpoints
from xdscp.balancer import build_balancer, sequential_picks
from xdscp.balancer.simulation import remap_fractions, simulate, synthetic_request
from xdscp.cli import main
from xdscp.cli.simulate import build_service, parse_endpoint
from xdscp.errors import ValidationError
from xdscp.model import Endpoint, HashOn, Locality
from xdscp.translate import client_resources


def test_parse_endpoint_forms() -> None:
    """IP:PORT[:WEIGHT[:ZONE[:PRIORITY]]] and bracketed IPv6."""
    assert parse_endpoint("10.0.0.1:80") == Endpoint("10.0.0.1", 80)
    assert parse_endpoint("10.0.0.1:80:3:eu-1:2") == Endpoint(
        "10.0.0.1", 80, weight=3, locality=Locality(zone="eu-1"), priority=2
    )
    assert parse_endpoint("[2001:db8::1]:443:2").key == "[2001:db8::1]:443"
    for bad in ("10.0.0.1", "10.0.0.1:x", "10.0.0.1:80:1:a:1:extra", "[::1]443"):
        with pytest.raises(ValidationError):
            parse_endpoint(bad)


def test_round_robin_simulation_is_exact_for_weights() -> None:
    """Weighted round robin over 1:2:7 gives exactly 10/20/70 % of 10,000 requests; plain
    round robin, translated without endpoint weights, rotates in equal shares."""
    resources = client_resources()
    result = simulate(
        model.service(endpoints(1, 2, 7), "svc", lb="weighted_round_robin"),
        resources,
        requests=10_000,
        seed=1,
    )
    assert [r.requests for r in result.endpoints] == [1000, 2000, 7000]
    assert [r.weight_share for r in result.endpoints] == pytest.approx([0.1, 0.2, 0.7])
    assert result.unserved == 0
    plain = simulate(
        model.service(endpoints(1, 2, 7), "svc", lb="round_robin"),
        resources,
        requests=9_000,
        seed=1,
    )
    assert [r.requests for r in plain.endpoints] == [3000, 3000, 3000]


def test_hashed_requests_follow_the_hash_policy() -> None:
    """With hash_on header:x-user, request i carries x-user: user-i and lands where the
    balancer sends that hash — the same endpoint on every run, whatever the seed."""
    service = model.service(
        endpoints(1, 1, 1), "svc", lb="ring_hash", hash_on=(HashOn.parse("header:x-user"),)
    )
    resources = client_resources()
    a = simulate(service, resources, requests=2000, seed=1)
    b = simulate(service, resources, requests=2000, seed=99)
    assert a == b
    cluster, cla = resources(service)
    lb = build_balancer(cluster, cla)
    assert lb.request_hash(**synthetic_request(service.policy.hash_on, 5)) is not None


def test_remap_fractions_consistent_vs_modulo() -> None:
    """Adding a 9th equal endpoint moves ~1/9 of keys under Maglev but ~8/9 under mod n."""
    service = model.service(
        endpoints(*[1] * 8), "svc", lb="maglev", hash_on=(HashOn.parse("source_ip"),)
    )
    resources = client_resources()
    fractions = remap_fractions(service, resources, samples=5000)
    added, removed = fractions["policy"]
    assert added == pytest.approx(1 / 9, abs=0.03)
    assert removed == pytest.approx(1 / 8, abs=0.03)
    modulo_added, _ = fractions["modulo"]
    assert modulo_added == pytest.approx(8 / 9, abs=0.03)


def test_cli_prints_the_table(tmp_path: Path) -> None:
    """The README example runs and shows each endpoint's share."""
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--policy",
            "weighted_round_robin",
            "--endpoint",
            "10.0.0.1:80:1",
            "--endpoint",
            "10.0.0.2:80:2",
            "--endpoint",
            "10.0.0.3:80:7",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {
        cells[1]: cells[2:5]
        for line in result.output.splitlines()
        if "10.0.0." in line and len(cells := [c.strip() for c in line.split("│")]) > 5
    }
    # EDF starts mid-cycle at a random worker seed: any window is exact to within one pick.
    assert abs(int(rows["10.0.0.3:80"][0]) - 7000) <= 1
    assert rows["10.0.0.3:80"][1:] == ["70.0", "70.0"]
    assert abs(int(rows["10.0.0.1:80"][0]) - 1000) <= 1


def test_cli_file_and_hash_policy_show_remapping(tmp_path: Path) -> None:
    """A YAML file describes the service; hash policies also print the remap table."""
    path = tmp_path / "svc.yaml"
    path.write_text(
        "policy: {lb: maglev, maglev_table_size: 251}\n"
        "hash_on: [header:x-user]\n"
        "requests: 500\n"
        "seed: 3\n"
        "endpoints:\n"
        "  - 10.0.0.1:80\n"
        "  - {address: 10.0.0.2, port: 80, weight: 3, locality: {zone: b}}\n"
    )
    result = CliRunner().invoke(main, ["simulate", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "hash(ip) mod n" in result.output
    assert "500 requests" in result.output


def test_cli_grpc_client_gets_the_grpc_translation() -> None:
    """--client grpc simulates the gRPC translation: weighted round robin follows weights
    (one locality per endpoint), least request serves (grpcio falls back to round robin)."""
    args = ["simulate", "--client", "grpc", "--seed", "3", "--requests", "20000"]
    endpoints = ["--endpoint", "10.0.0.1:80:1", "--endpoint", "10.0.0.2:80:9"]
    weighted = CliRunner().invoke(main, [*args, "--policy", "weighted_round_robin", *endpoints])
    assert weighted.exit_code == 0, weighted.output
    row = next(line for line in weighted.output.splitlines() if "10.0.0.2:80" in line)
    share = float([c.strip() for c in row.split("│")][3])
    assert abs(share - 90.0) < 1.5
    least = CliRunner().invoke(main, [*args, "--policy", "least_request", *endpoints])
    assert least.exit_code == 0, least.output


def test_service_needs_endpoints() -> None:
    """No endpoints anywhere is a usage error naming the flag."""
    with pytest.raises(ValidationError, match="endpoint"):
        build_service({}, policy="random", endpoints=(), hash_on=())


def test_sequential_picks_finish_each_request_before_the_next() -> None:
    """Least request over equal hosts: every request finishes, so none is ever busier and the
    picks spread evenly; no host is left with an active request."""
    lb = balancer(eps(1, 1, 1), "LEAST_REQUEST", seed=4)
    seen = sequential_picks(lb, 300)
    assert sum(seen.values()) == 300
    assert set(seen) == {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
    assert all(60 < n < 140 for n in seen.values()), seen  # 100 each, sd ~8
    assert all(host.active == 0 for host in lb.hosts)
    assert sequential_picks(lb, 6, name_of=lambda h: h.address).keys() <= {
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
    }


def test_sequential_picks_count_requests_no_host_takes() -> None:
    """gRPC drops an unhealthy endpoint: with no other, every request counts under "none"."""
    lb = balancer([Ep("10.0.0.1:80", health="unhealthy")], client="grpc")
    assert sequential_picks(lb, 5) == {"none": 5}
