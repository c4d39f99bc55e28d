"""A registration carries its own load: stored in both formats, read back the same, and a bad
load refused alone (the endpoint is kept)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cli import main as cli
from xdscp.cli.registrar import LoadRefresh
from xdscp.errors import ValidationError
from xdscp.etcd import WatchEvent, WatchEventType
from xdscp.model import MAX_REPORTED_RPS, MAX_REPORTED_UTILIZATION, ReportedLoad
from xdscp.registry import GrpcGoTarget, RegistryLayout, RegistryState, build_registration
from xdscp.registry.schema import (
    grpc_go_value,
    native_value,
    parse_grpc_go_value,
    parse_native_value,
)

ROOT = "/xdscp/services/"
LOAD = ReportedLoad(0.4, 120.0, 1_765_000_000.5)


def _put(key: str, value: bytes) -> WatchEvent:
    return WatchEvent(WatchEventType.PUT, key.encode(), value, 1)


@pytest.mark.parametrize("load", [LOAD, ReportedLoad(0.9), None])
def test_both_formats_round_trip_the_load(load: ReportedLoad | None) -> None:
    registration = build_registration("web", "10.0.0.1", 80, load=load)
    assert parse_native_value("web", "10.0.0.1:80", native_value(registration)).load == load
    go = parse_grpc_go_value("web", "10.0.0.1:80", grpc_go_value(registration))
    assert go is not None
    assert go.load == load
    assert "load" not in go.metadata


def test_the_grpc_go_value_keeps_the_go_managers_shape() -> None:
    """The load rides in `Metadata`, which the Go resolver carries as any JSON."""
    value = json.loads(grpc_go_value(build_registration("web", "10.0.0.1", 80, load=LOAD)))
    assert value == {
        "Op": 0, "Addr": "10.0.0.1:80",
        "Metadata": {"load": {"utilization": 0.4, "rps": 120.0, "at": 1_765_000_000.5}},
    }  # fmt: skip


garbage = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9]),
    st.floats(MAX_REPORTED_UTILIZATION * 1.0001, 1e300),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


@given(garbage)
def test_a_garbage_utilization_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ReportedLoad.from_mapping({"utilization": value})
    assert info.value.field == "load.utilization"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_rps_is_taken_in_range_only(rps: float) -> None:
    if math.isfinite(rps) and 0 <= rps <= MAX_REPORTED_RPS:
        assert ReportedLoad(0.5, rps).rps == rps
    else:
        with pytest.raises(ValidationError, match=r"load\.rps"):
            ReportedLoad(0.5, rps)


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ({"utilization": float("nan")}, "load.utilization: must be in [0.0, 1000.0], got nan"),
        ({"utilization": -0.5}, "load.utilization: must be in [0.0, 1000.0], got -0.5"),
        ({"utilization": 0.5, "rps": 1e12}, "load.rps: must be in [0.0, 1000000000.0]"),
        ({"utilization": 0.5, "cpu": 1}, "unknown fields ['cpu']"),
        ({"rps": 3}, "load.utilization: is required"),
        ([0.5], "load: must be an object"),
    ],
)
def test_a_bad_load_is_refused_alone_and_the_endpoint_kept(load: object, message: str) -> None:
    """Native and grpc-go: the endpoint serves without a load; the rejection says why."""
    raw = json.dumps({"address": "10.0.0.1", "port": 80, "load": load}).encode()
    go = json.dumps({"Op": 0, "Addr": "10.0.0.2:80", "Metadata": {"load": load}}).encode()
    state = RegistryState(RegistryLayout(grpc_targets=(GrpcGoTarget("svc/web", "web"),)))
    rejections = state.apply_native([_put(ROOT + "web/a", raw)])
    rejections += state.apply_grpc_go(state.layout.grpc_targets[0], [_put("svc/web/b", go)])
    services, _ = state.build(lambda _: None)
    assert [e.key for e in services["web"].endpoints] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert all(e.load is None for e in services["web"].endpoints)
    assert [r.reason for r in rejections] == ["invalid_load", "invalid_load"]
    assert all(message in r.message and "endpoint is kept" in r.message for r in rejections)


def test_a_good_load_reaches_the_endpoint() -> None:
    state = RegistryState()
    state.apply_native([_put(ROOT + "web/a", native_value(
        build_registration("web", "10.0.0.1", 80, load=LOAD)))])  # fmt: skip
    services, _ = state.build(lambda _: None)
    assert services["web"].endpoints[0].load == LOAD


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--utilization", "nan"], "--utilization"),
        (["--utilization", "-1"], "--utilization"),
        (["--utilization", "0.5", "--rps", "1e12"], "--rps"),
        (["--rps", "10"], "--rps needs --utilization"),
    ],
)
def test_register_refuses_a_bad_load_before_etcd(args: list[str], expected: str) -> None:
    """`xdscp register --utilization` is checked before any etcd connection (none runs)."""
    argv = ["register", "web", "10.0.0.1:80", *args, "--etcd", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_a_load_file_is_read_and_stamped(tmp_path: Path) -> None:
    path = tmp_path / "load.json"
    path.write_text('{"utilization": 0.25, "rps": 40}')
    load = LoadRefresh(1.0, file=path).read()
    assert (load.utilization, load.rps) == (0.25, 40.0)
    assert load.at > 0
    path.write_text('{"utilization": -3}')
    with pytest.raises(ValidationError, match=r"load\.utilization"):
        LoadRefresh(1.0, file=path).read()
