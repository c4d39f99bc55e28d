"""What xdscp's own tests share: processes, model builders, waits and constants.

Every test module and conftest imports shared code from here (or from `xdscp.testing`,
the part a user of xdscp can use too); conftests only declare fixtures, and no module
imports a conftest or a `test_*` module (tests/unit/test_suite_layout.py checks it).

- `paths`: the repository's root and the files tests read from it.
- `plane`: a control plane in this process, demo backends, Envoy and admin reads.
- `serve`: `xdscp serve` as a subprocess (`Serve`), its JSON log events, admin JSON.
- `cli`: `xdscp` CLI commands, in a click group or as long-running processes.
- `grpc_clients`: proxyless gRPC client processes (grpcio and grpc-go).
- `model`: builders of model objects (`service`, `endpoints`).
- `stats`: statistics of observed traffic shares against the reference balancer.
- `balancer`, `parity`: reference-balancer inputs and static-Envoy parity cases.
- `dns`, `hostile`, `tls`, `stack`, `expect`: DNS sources, hostile registry documents,
  TLS serve setups, the compose stack and what it should serve.

Process fixtures themselves live in tests/fixtures (registered by tests/conftest.py or
imported by the conftest of the tier that uses them).
"""
