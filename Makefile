# One command each for: run, test, lint, bench, migrate.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench migrate worker clean

$(BIN)/bookstore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/bookstore

install: $(BIN)/bookstore

## Install, then serve the API on the embedded default (SQLite, in-process projections).
run: install
	$(BIN)/bookstore serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

## Install, then run the whole test suite (needs PostgreSQL and Redis, see README), in two
## processes (pytest-xdist): each test makes its own databases, so they share nothing.
PYTEST_ARGS ?= -n 2
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

## Linters, then `alembic check` for both histories (read tables, write-side tables): each
## must match its models. Run on a throw-away SQLite database that `bookstore migrate` makes,
## whatever BOOKSTORE_* the shell holds, so no server is needed and no real database touched.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	export BOOKSTORE_ENV=development BOOKSTORE_DATABASE_URL="sqlite:///$$tmp/check.sqlite3" && \
	unset BOOKSTORE_EVENT_STORE_URL BOOKSTORE_BROKER_URL && \
	$(BIN)/bookstore migrate >/dev/null && \
	echo "alembic check (read tables):" && $(BIN)/alembic check && \
	echo "alembic check (write-side tables):" && $(BIN)/alembic -n write_side check

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

migrate: install
	$(BIN)/bookstore migrate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
