"""EnvoyProcess starts a real Envoy, finds its admin port, and stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdscp.errors import ProcessError
from xdscp.procs.envoy import EnvoyProcess

_ADMIN_ONLY = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}


@pytest.mark.envoy
def test_starts_ready_with_a_picked_admin_port_and_stops(tmp_path: Path) -> None:
    """With admin port 0 Envoy picks one; the process reads it, answers /ready, and stops."""
    envoy = EnvoyProcess(_ADMIN_ONLY, tmp_path)
    with envoy:
        assert envoy.admin_url.startswith("http://127.0.0.1:")
        assert envoy.admin("/ready").strip() == "LIVE"
    assert envoy._proc is not None
    assert envoy._proc.poll() is not None


@pytest.mark.envoy
def test_invalid_bootstrap_fails_with_envoys_reason(tmp_path: Path) -> None:
    """A bootstrap Envoy rejects raises ProcessError quoting Envoy's own message."""
    bad = _ADMIN_ONLY | {"static_resources": {"clusters": [{"name": "c", "type": "NOPE"}]}}
    with pytest.raises(ProcessError, match="NOPE"):
        EnvoyProcess(bad, tmp_path).start(timeout_s=20)
