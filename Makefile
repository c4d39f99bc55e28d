# Every target creates and uses the project's own virtual environment (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast e2e-compose lint demo simulate bench bench-hash bench-balancer bench-registry bench-fanout bench-propagation bench-path bench-scale protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The whole test suite: unit, property, and integration tests against real etcd / Envoy / Go.
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only (no real etcd, Envoy or Go).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not etcd and not envoy and not go and not grpc and not compose"

## The docker-compose end-to-end suite (docker-compose.yml): installs Docker from Debian and
## starts a private engine if needed, builds, runs, tears down; SKIP (exit 0) if no engine can start.
e2e-compose:
	./scripts/e2e-compose.sh

## The quick-start stack (deploy/quickstart) built from this checkout: etcd, xdscp serve, Envoy,
## two self-registering backends, Prometheus and Grafana, published on 127.0.0.1 only.
## `make try TRY_PROFILES=` leaves Prometheus and Grafana out; `make try-down` removes it all.
TRY_PROFILES ?= observability
DOCKER_COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
TRY = $(DOCKER_COMPOSE) -p xdscp-quickstart -f deploy/quickstart/docker-compose.yml $(TRY_PROFILES:%=--profile %)
.PHONY: try try-down
try:
	$(TRY) up --detach --build
	@echo "Envoy: curl -H 'Host: web' http://127.0.0.1:$(or $(TRY_ENVOY_PORT),10000)/  xdscp dashboard: http://127.0.0.1:$(or $(TRY_XDSCP_ADMIN_PORT),18001)/"
	@echo "Grafana (with the observability profile): http://127.0.0.1:$(or $(TRY_GRAFANA_PORT),3000)/  Prometheus: http://127.0.0.1:$(or $(TRY_PROMETHEUS_PORT),9090)/"

try-down:
	$(TRY) down --volumes --remove-orphans

lint: $(STAMP)
	$(BIN)/ruff check xdscp tests bench
	$(BIN)/ruff format --check xdscp tests bench
	$(BIN)/mypy

## etcd, xdscp, Envoy and demo backends on loopback: every balancing strategy, measured vs
## predicted; then stays up (Ctrl-C stops everything). `DEMO_ARGS=--once` runs the tour and exits.
demo: $(STAMP)
	$(BIN)/xdscp demo $(DEMO_ARGS)

## Predict a weighted round robin split with the reference balancer (no processes started).
simulate: $(STAMP)
	$(BIN)/xdscp simulate --policy weighted_round_robin --endpoint 10.0.0.1:80:1 --endpoint 10.0.0.2:80:2 --endpoint 10.0.0.3:80:7

## Each bench-* target takes extra flags in BENCH_ARGS (the last of a repeated flag wins), e.g.
## `make bench-fanout BENCH_ARGS="--n 10 --repeat 1 --out /tmp/fanout.json"`.
bench-hash: $(STAMP)
	$(BIN)/python -m bench.hash_tables $(BENCH_ARGS)

bench-balancer: $(STAMP)
	$(BIN)/python -m bench.balancer $(BENCH_ARGS)

bench-registry: $(STAMP)
	$(BIN)/python -m bench.registry $(BENCH_ARGS)

bench-fanout: $(STAMP)
	$(BIN)/python -m bench.fanout --n 100,1000,5000 --repeat 5 $(BENCH_ARGS)

## One registration's path from the etcd watch to the stream's write: files, functions, hand-offs.
bench-path: $(STAMP)
	$(BIN)/python -m bench.registration_path $(BENCH_ARGS)

bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

## Hostile ADS clients against `xdscp serve` while a real Envoy gets a change a second.
.PHONY: bench-hostile bench-csds
bench-hostile: $(STAMP)
	$(BIN)/python -m bench.hostile $(BENCH_ARGS)

## CSDS fetch over 10, 100 and 1000 nodes; the memory of a full NACK history.
bench-csds: $(STAMP)
	$(BIN)/python -m bench.csds_fetch $(BENCH_ARGS)

## The stream states and the status board alone (protocol layer), and the whole stream shell in one
## process, main-comparable (bench/protocol_layer.py, bench/streams.py).
bench-protocol: $(STAMP)
	$(BIN)/python -m bench.protocol_layer $(BENCH_ARGS)

bench-streams: $(STAMP)
	$(BIN)/python -m bench.streams $(BENCH_ARGS)

## etcd write -> Envoy's ACK -> first request, beside the raw etcd watch; go-control-plane and
## sovereign (installed into bench/.peers-venv, never into .venv) in the same run.
bench-propagation: $(STAMP)
	$(BIN)/python -m bench.propagation --changes 250 --peers go,sovereign $(BENCH_ARGS)

## Every benchmark above, one after the other.
bench: bench-hash bench-balancer bench-registry bench-fanout bench-propagation bench-path bench-scale bench-hostile bench-csds bench-protocol bench-streams

protos: $(STAMP)
	$(BIN)/python -m xdscp.etcd.regen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
