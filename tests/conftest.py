"""Shared fixtures for the whole suite."""

pytest_plugins = (
    "tests.fixtures.etcd",
    "tests.fixtures.envoy",
    "tests.fixtures.dns",
    "tests.fixtures.dnsmasq",
)
