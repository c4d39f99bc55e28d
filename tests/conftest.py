"""Shared fixtures for the whole suite."""

pytest_plugins = (
    "tests.fixtures.requirements",  # first: the others import it
    "tests.fixtures.etcd",
    "tests.fixtures.envoy",
    "tests.fixtures.dns",
    "tests.fixtures.dnsmasq",
)
