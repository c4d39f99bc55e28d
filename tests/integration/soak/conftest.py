"""The grpc-go client binary, built once per session (as for tests/integration/grpc)."""

from tests.fixtures.go import go_client_binary

__all__ = ["go_client_binary"]
