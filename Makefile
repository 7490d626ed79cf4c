# The two entry points of the README, plus the pieces they are made of.
# Both work on a new machine: uv is installed with pip when it is missing.

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PORT ?= 8000

.PHONY: dev test bootstrap sync lint typecheck unit integration e2e services services-down schemas clean

dev: sync  ## run the product with demo data at http://127.0.0.1:$(PORT)
	$(UV) run insights dev --demo --port $(PORT)

# Real Kafka, OpenSearch and PostgreSQL for the integration and end-to-end tests: taken from
# KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL and POSTGRES_DSN when set, else fetched (once) and
# started on loopback by deploy/local/services.py. They keep running after the tests, so the next
# run starts at once; `make services-down` stops them.
SERVICES_ENV = if [ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}$${OPENSEARCH_URL:-}$${POSTGRES_DSN:-}" ]; then \
	eval "$$(python3 deploy/local/services.py up)"; fi

test: sync lint typecheck  ## run every check and test, on real Kafka, OpenSearch and PostgreSQL
	$(SERVICES_ENV) && $(UV) run pytest

services:  ## start real Kafka, OpenSearch and PostgreSQL on loopback; prints their endpoints
	python3 deploy/local/services.py up

services-down:
	python3 deploy/local/services.py down

bootstrap:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

sync: bootstrap
	$(UV) sync --quiet

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: sync
	$(UV) run mypy

unit: sync
	$(UV) run pytest -m unit

integration: sync
	$(SERVICES_ENV) && $(UV) run pytest -m integration

e2e: sync
	$(SERVICES_ENV) && $(UV) run pytest -m e2e

schemas: sync  ## regenerate the event schema snapshots after a deliberate contract change
	$(UV) run python -m insights_contracts.schema

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
