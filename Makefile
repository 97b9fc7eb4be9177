# The two commands: `make run` (the daemon on the simulated stove) and `make test`;
# `sudo make install` puts the systemd service in place (README: "Running as a service").
PYTHON ?= python3
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: run test lint bench demo clean install uninstall

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

## Install into $(DESTDIR)$(PREFIX) with a venv of its own, the systemd units and the
## stovectl user; the config in $(SYSCONFDIR)/stovectl is created once, never replaced.
## SYSTEMDUNITDIR and SYSUSERSDIR (default: under $(PREFIX)/lib) place the units and
## the sysusers file elsewhere.
install:
	PYTHON="$(PYTHON)" DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" \
		scripts/install

## Remove what install put there; keeps the config, the credentials and the state.
uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" scripts/uninstall
