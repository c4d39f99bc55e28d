"""Fixtures: a control plane in this process, demo backends, and real Envoys pointed at it
(tests/fixtures/plane.py; the helpers around them are in tests/harness/plane.py)."""

from tests.fixtures.plane import backends, envoy, plane

__all__ = ["backends", "envoy", "plane"]
