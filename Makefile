# Every target creates and uses the project's own virtual environment (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint simulate bench bench-hash bench-balancer bench-registry bench-fanout protos clean

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
	$(BIN)/python -m pytest -m "not etcd and not envoy and not go"

lint: $(STAMP)
	$(BIN)/ruff check xdscp tests bench
	$(BIN)/ruff format --check xdscp tests bench
	$(BIN)/mypy

## The main job until `xdscp demo` exists: predict a weighted round robin split.
simulate: $(STAMP)
	$(BIN)/xdscp simulate --policy weighted_round_robin --endpoint 10.0.0.1:80:1 --endpoint 10.0.0.2:80:2 --endpoint 10.0.0.3:80:7

bench-hash: $(STAMP)
	$(BIN)/python -m bench.hash_tables

bench-balancer: $(STAMP)
	$(BIN)/python -m bench.balancer

bench-registry: $(STAMP)
	$(BIN)/python -m bench.registry
	$(BIN)/python -m bench.fanout --n 100,1000,5000 --repeat 5

bench-fanout: $(STAMP)
	$(BIN)/python -m bench.fanout --n 100,1000,5000 --repeat 5

bench: $(STAMP)
	$(BIN)/python -m bench.balancer
	$(BIN)/python -m bench.registry

protos: $(STAMP)
	$(BIN)/python -m xdscp.etcd.regen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
