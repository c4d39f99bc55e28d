"""Integration tests of DNS discovery against a real DNS server process."""
