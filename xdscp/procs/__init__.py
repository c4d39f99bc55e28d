"""Child processes xdscp starts for the demo, tests and benches: Envoy, etcd, backends."""
