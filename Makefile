# The two commands of README.md: `make demo` and `make test`.
# Each installs what is missing (Debian packages, .venv) and then runs.

VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

install:
	@scripts/bootstrap.sh

demo: install
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile

bench: install
	$(BIN)/python benchmarks/bench_local.py
