"""xdscp: service discovery and load balancing control plane for Envoy and proxyless gRPC."""

__version__ = "0.1.0.dev0"
