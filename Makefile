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

# Lint keeps one core busy for half a minute; meanwhile one collection of the suite on
# another writes pytest's rewritten test modules to __pycache__, which every worker
# then reads instead of rewriting them all again (about 17 s each). Bytecode is written
# for that collection even where PYTHONDONTWRITEBYTECODE is set.
test: install
	@PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q --collect-only -p no:cacheprovider \
		> /dev/null 2>&1 & warm=$$!; \
		$(MAKE) --no-print-directory lint; status=$$?; wait $$warm; exit $$status
	$(BIN)/python -m pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile

bench: install
	$(BIN)/python benchmarks/bench_local.py
