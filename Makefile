# The two commands a newcomer runs: `make demo` and `make test`. Each creates .venv and
# installs what it needs. Without DATABASE_URL both use an embedded PostgreSQL.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# mypy's Django plugin imports the test settings, which need some DATABASE_URL; it never connects.
MYPY_DB := $(if $(DATABASE_URL),$(DATABASE_URL),postgresql://localhost/mypy)
PY312 := $(shell pyenv prefix 3.12 2>/dev/null)

.PHONY: help venv test pytest lint format demo serve tox clean pgbouncer test-pgbouncer docs soak \
	bench bench-quick
.PHONY: browser test-browser screenshots

help:
	@echo "make demo   - run the queue demo (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make test   - lint, type-check and run the whole test suite, with coverage"
	@echo "make serve  - serve the example project's admin on http://127.0.0.1:8000/admin/"
	@echo "make tox    - run the suite on Django 5.2 (py3.11) and Django 6.1 (py3.12)"
	@echo "make docs   - build the documentation (mkdocs, strict) into site/"
	@echo "make test-pgbouncer - the API, CLI and worker tests through PgBouncer (transaction pooling)"
	@echo "make test-queue-db - the whole suite with the pgqrs tables on a second database"
	@echo "make soak   - producers and workers for SOAK_MINUTES (default 5): throughput, dead tuples, table size"
	@echo "make bench  - the benchmark against the peers (docs/benchmarks.md); make bench-quick for CI"
	@echo "make test-browser - the admin end-to-end in headless Chromium (installs it if missing)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=$(MYPY_DB) $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole suite with coverage of pgqrs_django (its subprocesses too, see [tool.coverage.run]):
# the total is printed, and the run fails when it drops below COVERAGE_FLOOR.
COVERAGE_FLOOR := 96
test: lint
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS)

# Debian's pgbouncer, installed when missing (CI machines run as root).
pgbouncer:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer)

test-pgbouncer: $(STAMP) pgbouncer
	PGQRS_TEST_PGBOUNCER=1 $(BIN)/pytest -m pgbouncer $(PYTEST_ARGS)

# The suite with PGQRS["DATABASE"] = "queue", a second database (tests/settings.py; the chaos
# and outage tests run in `make test` only, see tests/conftest.py).
.PHONY: test-queue-db
test-queue-db: $(STAMP)
	PGQRS_TEST_QUEUE_DB=1 $(BIN)/pytest $(PYTEST_ARGS)

# Debian's chromium for the end-to-end admin tests, installed when missing (CI runs as root);
# Playwright (a dev dependency) drives it through executable_path, downloading no browser.
browser: $(STAMP)
	@test -x /usr/bin/chromium || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@$(BIN)/python -c "import playwright" 2>/dev/null || \
		$(BIN)/pip install --quiet --disable-pip-version-check 'playwright>=1.45'

test-browser: browser
	$(BIN)/pytest -m browser tests/e2e $(PYTEST_ARGS)

# Regenerate docs/img/*.png (the admin screenshots in docs/admin.md).
screenshots: browser
	PGQRS_SCREENSHOTS=docs/img $(BIN)/pytest -m browser tests/e2e -k screenshots $(PYTEST_ARGS)

demo: $(STAMP)
	cd example_project && ../$(BIN)/python manage.py demo

serve: $(STAMP)
	cd example_project && ../$(BIN)/python manage.py migrate --verbosity 0 && \
		../$(BIN)/python manage.py runserver 127.0.0.1:8000

tox: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check 'tox>=4'
	PATH="$(if $(PY312),$(PY312)/bin:,)$$PATH" $(BIN)/tox $(TOX_ARGS)

DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,docs]'
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The benchmark's own environment: pgqrs_django plus the peers it is compared with.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -e . -r bench/requirements.txt
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench --quick --json bench/results/quick.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tox .mypy_cache .ruff_cache .pytest_cache example_project/.pgdata

# Not in CI: producers and workers for SOAK_MINUTES on a private PostgreSQL (autovacuum on),
# reporting throughput, dead tuples and the size of pgqrs_message (docs/operations.md).
SOAK_MINUTES ?= 5
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)
