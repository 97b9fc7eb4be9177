# The two commands: `make run` (the daemon on the simulated stove) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: run test lint bench demo clean

$(READY): pyproject.toml scripts/bootstrap
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap
	touch $@

## Run the daemon on the simulated stove; in another terminal: .venv/bin/stovectl status
run: $(READY)
	$(BIN)/stovectl run --config config/stovectl.toml --state-dir .run/state

## Lint, type-check and run the whole test suite.
test: $(READY) lint
	$(BIN)/python -m pytest

lint: $(READY)
	$(BIN)/ruff check stovectl tests
	$(BIN)/mypy

## Benchmarks (not tests): each figure beside a floor measured in the same run.
bench: $(READY)
	$(BIN)/python -m tests.bench

demo: $(READY)
	$(BIN)/stovectl demo

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache .hypothesis
