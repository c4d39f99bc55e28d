"""The `services:` document: one strict parser with line numbers for `--static`, `--config`'s
`sources.static.services` and `simulate --file`; arbitrary input gives services or one
`ConfigFieldError`, and a valid document round-trips."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdscp.cli import main
from xdscp.cli.simulate import load_file
from xdscp.config import load_config
from xdscp.errors import ConfigError, ConfigFieldError, ValidationError
from xdscp.model import BalancingPolicy, Endpoint, Health, LbPolicy, Locality, Service
from xdscp.sources.services_doc import load_services, services_document
from xdscp.sources.static import read_services_file

TYPO = """\
services:
  web:
    endpoints:
      - {address: 10.0.0.1, port: 80}
      - {address: 10.0.0.2, port: 80, wieght: 2}
"""
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TYPO, "s.yaml:5: services.web.endpoints[1]: unknown field 'wieght', did you mean"
               " 'weight'?"),
        ("services:\n  web:\n    polcy: {lb: maglev}\n",
         "s.yaml:3: services.web: unknown field 'polcy', did you mean 'policy'?"),
        ("services:\n  web:\n    endpoints:\n      - {address: 10.0.0.1, port: 80}\n"
         "      - {address: 10.0.0.2, port: 80, weight: 0}\n",
         "s.yaml:5: services.web.endpoints[1].weight: must be in [1, 4294967295], got 0"),
        ("services:\n  web:\n    policy:\n      lb: maglev\n      hash_on: [header:x]\n"
         "      retries: {num_retrys: 2}\n",
         "s.yaml:6: services.web.policy.retries: unknown field 'num_retrys', did you mean"
         " 'num_retries'?"),
        ("servces: {}\n", "s.yaml:1: unknown field 'servces', did you mean 'services'?"),
        ("{}\n", "s.yaml:1: the file needs a `services:` mapping"),
        ("services: [\n", "s.yaml:2: invalid YAML: expected the node content, but found"
                          " '<stream end>'"),
        ("services:\n  web:\n    endpoints: [{address: 10.0.0.1, port: 80, zone: a}]\n",
         "s.yaml:3: services.web.endpoints[0].locality: zone goes in"
         " `locality: {region, zone, sub_zone}`"),
        ("a: 1\nb: \x07\n", "s.yaml:2: invalid YAML: character '\\x07' (position 8) is not"
                            " allowed"),
    ],
)  # fmt: skip
def test_a_bad_services_file_is_one_line_with_its_line_number(text: str, expected: str) -> None:
    """Typos are refused (they were silently dropped: `polcy` lost the policy), each error
    names the line, the service and the endpoint's index."""
    with pytest.raises(ConfigFieldError) as info:
        load_services(text, "s.yaml")
    assert str(info.value) == expected


def test_the_three_readers_give_the_same_error(tmp_path: Path) -> None:
    """`--static`, `--config` and `simulate --file` read the document with one parser: the
    same typo gives the same message, at the line of each file."""
    static = tmp_path / "services.yaml"
    static.write_text(TYPO)
    with pytest.raises(ConfigFieldError) as from_static:
        read_services_file(static)
    config = tmp_path / "xdscp.yaml"
    config.write_text("sources:\n  static:\n" + textwrap.indent(TYPO, "    "))
    with pytest.raises(ConfigFieldError) as from_config:
        load_config(config, {})
    result = CliRunner().invoke(main, ["simulate", "--file", str(static)])
    message = "unknown field 'wieght', did you mean 'weight'?"
    assert str(from_static.value) == f"{static}:5: services.web.endpoints[1]: {message}"
    expected = f"{config}:7: sources.static.services.web.endpoints[1]: {message}"
    assert str(from_config.value) == expected
    assert result.exit_code == 1
    assert result.output == f"Error: {static}:5: services.web.endpoints[1]: {message}\n"


def test_simulate_file_keys_are_checked_too(tmp_path: Path) -> None:
    """The simulation file's own keys are strict: `reqests` is not silently ignored."""
    path = tmp_path / "sim.yaml"
    path.write_text("endpoints: [10.0.0.1:80]\nreqests: 5\n")
    result = CliRunner().invoke(main, ["simulate", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: unknown field 'reqests', did you mean 'requests'?" in result.output


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_bytes(b"services:\n  \xff\xfe: {}\n")
    with pytest.raises(ConfigError, match=f"cannot read {path}"):
        read_services_file(path)


# --- properties ------------------------------------------------------------------------

_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=12) | st.sampled_from(["10.0.0.1", "::1", "maglev", "http", "5s"])
)  # fmt: skip
_KEYS = st.sampled_from(
    ["services", "web", "endpoints", "policy", "address", "port", "weight", "locality", "zone",
     "metadata", "health", "priority", "hash_key", "lb", "hash_on", "retries", "slow_start",
     "health_check", "outlier_detection", "interval", "kind", "wieght"]
) | st.text(max_size=6)  # fmt: skip
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


def _parse_or_project_error(text: str) -> None:
    outcome: dict[str, Service] | ConfigFieldError
    try:
        outcome = load_services(text, "s.yaml")
    except ConfigFieldError as exc:
        outcome = exc
    if isinstance(outcome, ConfigFieldError):
        assert str(outcome).startswith("s.yaml")
    else:
        assert all(isinstance(s, Service) for s in outcome.values())


@SLOW
@given(st.text(max_size=200))
def test_any_text_gives_services_or_a_config_field_error(text: str) -> None:
    """Arbitrary text never raises anything but the project's own error, naming the file."""
    _parse_or_project_error(text)


@SLOW
@given(st.dictionaries(_KEYS, _TREES, max_size=3) | st.builds(lambda t: {"services": t}, _TREES))
def test_any_yaml_shaped_like_the_document_parses_or_is_refused(tree: object) -> None:
    """Documents close to the schema (its keys, junk values) parse or are refused cleanly."""
    _parse_or_project_error(yaml.safe_dump(tree))


@SLOW
@given(st.binary(max_size=200))
def test_any_bytes_in_a_file_give_services_or_a_config_error(data: bytes) -> None:
    """A file of arbitrary bytes: services, or a ConfigError naming the file, never a crash."""
    outcome: object = None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "services.yaml"
        path.write_bytes(data)
        try:
            outcome = read_services_file(path)
        except ConfigError as exc:
            outcome = exc
    assert isinstance(outcome, dict) or str(outcome).startswith((f"cannot read {path}", str(path)))


_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_ENDPOINTS = st.builds(
    Endpoint,
    address=st.ip_addresses().map(str),
    port=st.integers(1, 65535),
    weight=st.integers(1, 2**32 - 1),
    locality=st.builds(Locality, zone=st.sampled_from(["", "a", "b"])),
    priority=st.integers(0, 5),
    health=st.sampled_from(list(Health)),
    metadata=st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=2),
    hash_key=st.none() | st.text(min_size=1, max_size=8),
)
_POLICIES = st.builds(
    BalancingPolicy,
    lb=st.sampled_from([p for p in LbPolicy if p is not LbPolicy.SOURCE_IP_HASH]),
    locality_weighted=st.booleans(),
    timeout=st.none() | st.integers(0, 60).map(float),
    outlier_detection=st.none() | st.builds(dict, consecutive_5xx=st.integers(0, 10)),
    circuit_breakers=st.none() | st.builds(dict, max_requests=st.integers(1, 1000)),
)


@st.composite
def _services(draw: st.DrawFn) -> dict[str, Service]:
    out = {}
    for name in draw(st.sets(_NAMES, max_size=3)):
        endpoints = draw(st.lists(_ENDPOINTS, max_size=4, unique_by=lambda e: (e.address, e.port)))
        out[name] = Service(name, tuple(endpoints), draw(_POLICIES))
    return out


@SLOW
@given(_services())
def test_a_valid_document_round_trips(services: dict[str, Service]) -> None:
    """`services_document` written as YAML reads back as the same services."""
    text = yaml.safe_dump(services_document(services))  # non-ASCII escaped: NEL is a break
    assert load_services(text, "s.yaml") == services


@SLOW
@given(st.dictionaries(_KEYS | st.sampled_from(["requests", "client", "seed", "added"]), _TREES))
def test_any_simulation_file_simulates_or_is_refused_cleanly(tree: dict[str, object]) -> None:
    """`simulate --file`'s reader on arbitrary documents: a document or a project error."""
    outcome: object = None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sim.yaml"
        path.write_text(yaml.safe_dump(tree))
        try:
            outcome = load_file(path)
        except (ConfigError, ValidationError) as exc:
            outcome = exc
    assert isinstance(outcome, dict | ConfigError | ValidationError)


def test_an_alias_bomb_is_refused_and_aliases_still_work() -> None:
    """Aliases repeating a billion values are one error; a shared endpoint default is fine."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigFieldError, match="aliases repeat too many values"):
        load_services("\n".join(lines), "s.yaml")
    shared = (
        "services:\n  web:\n    endpoints:\n"
        "      - &one {address: 10.0.0.1, port: 80, weight: 3}\n"
        "      - {<<: *one, address: 10.0.0.2}\n"
    )
    endpoints = load_services(shared, "s.yaml")["web"].endpoints
    assert [(e.address, e.weight) for e in endpoints] == [("10.0.0.1", 3), ("10.0.0.2", 3)]
