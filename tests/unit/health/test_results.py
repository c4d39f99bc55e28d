"""The etcd layout of verdicts: any key or value, a verdict or a clear refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import ValidationError
from xdscp.health import (
    HealthLayout,
    Verdict,
    encode_result,
    health_prefix,
    parse_result,
)

LAYOUT = HealthLayout("/xdscp/_health/")
names = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True)
endpoints = st.builds(lambda a, p: f"10.0.{a}.1:{p}", st.integers(0, 255), st.integers(1, 65535))


def test_the_health_prefix_sits_beside_the_registry() -> None:
    """Never under the services prefix, where the registry would read it as a service."""
    assert health_prefix("/xdscp/services/") == "/xdscp/_health/"
    assert health_prefix("/team/a/services") == "/team/a/_health/"
    assert LAYOUT.leader_key == b"/xdscp/_health/leader"


@given(names, endpoints, st.sampled_from([Verdict.HEALTHY, Verdict.UNHEALTHY]))
def test_a_verdict_round_trips(service: str, endpoint: str, verdict: Verdict) -> None:
    """Key and value written by the checker read back as the same verdict."""
    key = LAYOUT.result_key((service, endpoint))
    assert LAYOUT.parse_key(key) == (service, endpoint)
    assert parse_result(encode_result(verdict, "host:1", 1.5)) is verdict


@given(st.binary(max_size=200))
def test_any_key_is_a_verdict_key_or_a_validation_error(raw: bytes) -> None:
    """Garbage under the prefix is refused with ValidationError, never another exception."""
    try:
        service, endpoint = LAYOUT.parse_key(LAYOUT.results_prefix + raw)
    except ValidationError as exc:
        field = exc.field
    else:
        field = ""
        assert service
        assert endpoint.count("/") == 0
    assert field in ("", "health_result.key")


@given(st.one_of(st.binary(max_size=300), st.builds(lambda t: t.encode(), st.text(max_size=80))))
def test_any_value_is_a_verdict_or_a_validation_error(raw: bytes) -> None:
    """A value another writer left is refused with the field named."""
    try:
        verdict: Verdict | str = parse_result(raw)
    except ValidationError as exc:
        verdict = exc.field
    assert verdict in (Verdict.HEALTHY, Verdict.UNHEALTHY, "health_result", "health_result.verdict")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"verdict": "unknown"}', "health_result.verdict"),
        (b"[1]", "health_result"),
        (b"{", "health_result"),
        (b'{"verdict": "healthy", "pad": "' + b"x" * 2000 + b'"}', "health_result"),
    ],
)
def test_bad_values_name_the_field(raw: bytes, field: str) -> None:
    """Each refusal says what is wrong."""
    with pytest.raises(ValidationError) as info:
        parse_result(raw)
    assert info.value.field == field
