"""The quick-start stack's fixtures are the compose suite's (tests/fixtures/compose.py): the
stack described by the XDSCP_E2E_* variables, an etcd client on it, and `started`, which
waits until every backend registered itself and Envoy serves the registry's web service.
scripts/e2e-compose.sh sets those variables to the ports the stack publishes on 127.0.0.1."""

from tests.fixtures.compose import etcd, stack, started

__all__ = ["etcd", "stack", "started"]
