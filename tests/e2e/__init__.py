"""The docker-compose end-to-end suite (run by the stack's test-runner: `make e2e-compose`)."""
