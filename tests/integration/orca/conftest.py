"""Fixtures of the ORCA tests: the grpc-go client binary (built once per session)."""

from __future__ import annotations

from tests.fixtures.go import go_client_binary

__all__ = ["go_client_binary"]
