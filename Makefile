# Postel: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-dev test lint typecheck check bench soak fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start Postel on the standard ports with the embedded default store (SQLite + files in ./data).
run: $(STAMP)
	$(BIN)/postel serve $(if $(CONFIG),--config $(CONFIG),)

## Start Postel on high ports (2525, 5587, 5465, ...) for a user without privileges.
run-dev: $(STAMP)
	$(BIN)/postel serve --dev

## Install what the tests need, then lint, type-check and run the whole suite.
test: $(STAMP)
	scripts/install-debian-packages
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Load and soak runs, kept out of `make test`.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## Mixed load of every protocol for SOAK_SECONDS (default 600), then every message checked.
soak: $(STAMP)
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) nice -n 19 $(BIN)/python bench/soak.py

## Coverage-guided fuzzing (atheris) of the parsers, FUZZ_SECONDS (600) per target, one
## target at a time at nice 19; not part of `make test`. FUZZ_TARGETS picks some (fuzz/).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= imap smtp pop3 mime web
fuzz: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,fuzz]'
	FUZZ_SECONDS=$(FUZZ_SECONDS) PY=$(BIN)/python fuzz/run.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
