# The two entry points of the README, plus the pieces they are made of.
# Both work on a new machine: uv is installed with pip when it is missing.

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PORT ?= 8000

.PHONY: dev test bootstrap sync lint typecheck unit e2e schemas clean

dev: sync  ## run the product with demo data at http://127.0.0.1:$(PORT)
	$(UV) run insights dev --demo --port $(PORT)

test: sync lint typecheck  ## run every check and test
	$(UV) run pytest

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

e2e: sync
	$(UV) run pytest -m e2e

schemas: sync  ## regenerate the event schema snapshots after a deliberate contract change
	$(UV) run python -m insights_contracts.schema

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
