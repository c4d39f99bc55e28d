"""Shared fixtures for the whole suite."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = (
    "tests.fixtures.requirements",  # first: the others import it
    "tests.fixtures.etcd",
    "tests.fixtures.etcd_backends",
    "tests.fixtures.envoy",
    "tests.fixtures.dns",
    "tests.fixtures.dnsmasq",
)


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis without clocks: on a loaded 2-core machine time is not a test condition.

    No per-example deadline and no `too_slow` health check, for every property test (a test's
    own `@settings` still sets its example count and the rest).
    """
    del config
    settings.register_profile("xdscp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("xdscp")
