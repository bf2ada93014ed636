# The two commands the README promises, plus helpers. Needs only python3 (and make).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest docs bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

## Run the demo: synthetic buyers, the whole member-marketing story, on SQLite + emulator.
demo: $(STAMP)
	$(BIN)/membermkt demo

## Run every quality gate and every test (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## Build the documentation site into site/ (strict: broken links and bad references fail).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## Run the benchmarks at a size that suits a laptop (each prints its ratios; see benchmarks/
## for the full sizes and docs/performance/ for the figures). Needs the dev extra (duckdb)
## and, for PostgreSQL, MEMBERMKT_TEST_POSTGRES_URL or a server on 127.0.0.1:5432.
bench: $(STAMP)
	$(BIN)/python benchmarks/segments.py --members 200000
	$(BIN)/python benchmarks/stores.py --events 200000 --members 100000
	$(BIN)/python benchmarks/analytics.py --members 100000 --events 2000000
	$(BIN)/python benchmarks/callbacks.py --n 5000
	$(BIN)/python benchmarks/campaigns.py --n 10000 --plan-members 1000000
	$(BIN)/python benchmarks/synthetic.py --members 200000 --object-members 20000
	$(BIN)/python benchmarks/scale_postgres.py --members 200000 --events 2000000
	$(BIN)/python benchmarks/ledger_workers.py --n 5000 --workers 1 2 4

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site
