"""Parity of the reference balancer with a real Envoy, measured with real traffic."""
