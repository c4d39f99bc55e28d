"""Unit tests of xdscp.dns (no network)."""
