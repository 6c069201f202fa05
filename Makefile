# kilo-agent developer commands. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_SRC := proto/kilo/agent/v1/agent.proto

.PHONY: run test proto lint bench install system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start the agent on its built-in default config (or $$KILO_AGENT_CONFIG / ARGS="--config x.yaml").
run: $(STAMP)
	$(VENV)/bin/kilo-agent serve $(ARGS)

## Install what the tests need (system packages included) and run the whole suite.
test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## System packages the tests and benchmarks use (Debian); installed only when missing.
system-deps:
	@./scripts/system-deps.sh

## Regenerate the committed Python code (and type stubs) from proto/.
proto: $(STAMP)
	$(PY) scripts/gen_proto.py

lint: $(STAMP)
	$(VENV)/bin/ruff check agent tests benchmarks scripts
	$(VENV)/bin/ruff format --check agent tests benchmarks scripts
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@./scripts/system-deps.sh --bench
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
