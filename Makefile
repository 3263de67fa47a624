# Two commands on a fresh machine with only python3: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint pytest bench-orders clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

## run: set up and serve the API on the embedded default (SQLite + simulator), with a demo account
run: $(STAMP)
	$(BIN)/esimgate serve --demo

## test: set up, then format check, lint, type check and the whole test suite
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/pytest

## bench-orders: order throughput and gateway overhead on PostgreSQL (see bench/README.md)
bench-orders: $(STAMP)
	$(BIN)/python bench/bench_orders.py --orders 400 --concurrency 16

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
