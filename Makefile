# One target per everyday job. Everything runs inside a project-local virtualenv (.venv).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-full faults lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup  ## sandbox + sync + OKR report on the embedded SQLite store
	$(BIN)/okrsync demo

test: setup  ## the whole test suite (SQLite and a throwaway PostgreSQL), one worker per core
	$(BIN)/pytest -q -n auto

test-full: setup  ## also the long fault-matrix cases
	$(BIN)/pytest -q -n auto --run-slow

faults: setup  ## the whole fault matrix and the kill -9 loop against the sandbox
	$(BIN)/pytest -q -n auto --run-slow tests/integration/test_faults.py tests/integration/test_hostile.py tests/integration/test_kill9.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .bench-venv .okrsync-demo .pytest_cache .mypy_cache .ruff_cache
