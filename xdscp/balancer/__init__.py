"""The reference balancer: Envoy's and proxyless gRPC's load-balancing algorithms, reproduced."""
