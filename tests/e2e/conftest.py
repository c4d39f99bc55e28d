"""Fixtures of the compose suite: the stack (waited for once), and an etcd client on it
(tests/fixtures/compose.py)."""

from tests.fixtures.compose import etcd, stack, started

__all__ = ["etcd", "stack", "started"]
