# The two entry points of the README, plus the pieces they are made of.
# Both work on a new machine: uv is installed with pip when it is missing.

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PORT ?= 8000

.PHONY: dev test test-cluster test-clock faketime edge ops-tools keycloak keycloak-background bench bench-retention bench-scale browser dashboard bootstrap sync lint typecheck unit integration e2e services services-down schemas clean

dev: sync dashboard  ## run the product with demo data at http://127.0.0.1:$(PORT)
	$(UV) run insights dev --demo --port $(PORT)

# Real Kafka, OpenSearch and PostgreSQL for the integration and end-to-end tests: taken from
# KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL and POSTGRES_DSN when set, else fetched (once) and
# started on loopback by deploy/local/services.py. They keep running after the tests, so the next
# run starts at once; `make services-down` stops them.
SERVICES_ENV = if [ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}$${OPENSEARCH_URL:-}$${POSTGRES_DSN:-}" ]; then \
	eval "$$(python3 deploy/local/services.py up)"; fi

# The main run names its 40 slowest tests at the end, to see where CI's hour goes.
# The Go tools of tests/deploy build (the first time: 10 minutes and more) in the background, at
# the lowest priority, while the other tests run; their tests run once they are there.
test: sync keycloak-background browser faketime edge dashboard lint typecheck  ## run every check and test, on real Kafka, OpenSearch and PostgreSQL
	@mkdir -p test-artifacts
	$(SERVICES_ENV) \
		&& { nice -n 19 $(MAKE) --no-print-directory ops-tools >test-artifacts/ops-tools.log 2>&1 & tools=$$!; } \
		&& $(UV) run pytest --durations=40 --ignore=tests/deploy --ignore=tests/cluster \
		&& { wait $$tools || { cat test-artifacts/ops-tools.log; exit 1; }; } \
		&& $(UV) run pytest tests/deploy && $(CLOCK_AHEAD_TESTS) \
		&& $(MAKE) --no-print-directory test-cluster

# The same verdicts on any day: the tests whose outcome could hang on the calendar (the unit tests
# and the end-to-end flows, whose processes count statistics over windows ending today) run again
# with the clock of the test and of every process it starts moved a year ahead, by Debian's
# libfaketime. Kafka, OpenSearch and PostgreSQL keep the real time, as servers elsewhere would.
# The flows are those that date events or ask for windows, in the embedded mode; the crash and
# fault tests, which kill processes and date nothing, run once. libfaketime cannot move a thread's
# timed wait (it waits for the shifted deadline, a year away), which the SQLite checkpointer's own
# tests and the distributed processes' clients rely on, so those run once, on the real clock.
CLOCK_SHIFT ?= +365d
CLOCK_AHEAD_FLOWS = test_flow test_bad_input test_tenancy test_dedup_window test_demo
CLOCK_AHEAD_TESTS = faketime -f '$(CLOCK_SHIFT)' $(UV) run pytest -p no:cacheprovider \
	-m "unit or e2e" -k "not distributed" libs services tests/unit \
	$(CLOCK_AHEAD_FLOWS:%=tests/e2e/%.py) --ignore=libs/common/tests/test_sqlite_checkpoints.py

# Losing a node: the distributed mode on three Kafka brokers and three OpenSearch nodes
# (deploy/local/services.py cluster, ports 29094-29303, data of their own), a broker and a node
# SIGKILLed during webhook streams and an import, projector replicas 1 -> 3 -> 1, two ingest and
# two import replicas behind the edge. The cluster is started for it and stopped after (six JVMs
# hold about 2.5 GiB at rest); PostgreSQL is the shared one. The last step of `make test`: about
# 4 minutes on a quiet machine (214 s: the four tests 180 s), 12 on 2 busy cores.
test-cluster: sync edge  ## lose a broker and an OpenSearch node under load; scale replicas
	$(SERVICES_ENV) && python3 deploy/local/services.py cluster up >/dev/null \
		&& { $(UV) run pytest -m cluster tests/cluster; status=$$?; \
			python3 deploy/local/services.py cluster down; exit $$status; }

test-clock: sync faketime  ## the calendar-sensitive tests again, with the clock a year ahead
	$(SERVICES_ENV) && $(CLOCK_AHEAD_TESTS)

# Every benchmark at its default size, one after another, on the real services (docs/performance.md
# holds their latest figures): 5 to 7 minutes on 2 cores. The query benchmark runs on a
# deployment bench.generate loads with 20,000 users and 100,000 messages, removed afterwards.
bench: sync  ## run every benchmark and print its figures (5 to 7 minutes)
	$(SERVICES_ENV) && $(UV) run python -m bench.import_csv --mode all \
		&& $(UV) run python -m bench.ingest --mode all \
		&& $(UV) run python -m bench.raw_door \
		&& $(UV) run python -m bench.forget \
		&& $(UV) run python -m bench.upload_memory \
		&& $(UV) run python -m bench.generate --users 20000 --messages 100000 --keep \
		&& { $(UV) run python -m bench.query --clients 20 --seconds 20; status=$$?; \
			$(UV) run python -m bench.generate --down; exit $$status; }

# The first retention pass, with searches and message lists running beside it: 1,000,000 messages
# in SQLite, 200,000 in OpenSearch (docs/performance.md has the figures and how long it takes).
bench-retention: sync  ## time the first retention pass and the queries meanwhile
	$(SERVICES_ENV) && $(UV) run python -m bench.retention --backend sqlite \
		&& $(UV) run python -m bench.retention --backend opensearch --messages 200000 --users 4000

# The app grown to 1,000,000 users and 10,000,000 messages, measured at 100,000, 200,000, 500,000
# and 1,000,000 users (index sizes, heap, latencies), then queried for 60 s quiet and 60 s under
# 5,000 webhook events/s, and removed: about 80 minutes on 2 cores, and about 36 GB of free disk.
bench-scale: sync  ## grow an app to 1M users and 10M messages, measuring as it grows (about 80 minutes)
	$(SERVICES_ENV) && $(UV) run python -m bench.growth --keep \
		&& { $(UV) run python -m bench.query --clients 20 --seconds 60 --under-ingest 5000; \
			status=$$?; $(UV) run python -m bench.generate --down; exit $$status; }

# The web dashboard (TypeScript, built with Node.js into the insights-query package). Node.js is
# needed only to build it; without npm, / serves a plain page that says how to build it.
DASHBOARD := services/insights-query/dashboard
DASHBOARD_OUT := services/insights-query/src/insights_query/dashboard_assets
DASHBOARD_SOURCES := $(shell find $(DASHBOARD)/src -type f 2>/dev/null) \
	$(DASHBOARD)/index.html $(DASHBOARD)/vite.config.ts $(DASHBOARD)/tsconfig.json
NO_NPM = echo "npm is not installed: the dashboard is not built (install Node.js 20.19+, then run make dashboard)"

dashboard: $(DASHBOARD_OUT)/index.html  ## build the web dashboard when its sources changed

$(DASHBOARD)/node_modules: $(DASHBOARD)/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(DASHBOARD) && npm install --no-audit --no-fund --package-lock=false && touch node_modules; \
	fi

$(DASHBOARD_OUT)/index.html: $(DASHBOARD)/node_modules $(DASHBOARD)/package.json $(DASHBOARD_SOURCES)
	@if command -v npm >/dev/null 2>&1; then cd $(DASHBOARD) && npm run build; else $(NO_NPM); fi

# Debian's headless Chromium for the browser tests (tests/browser), with CJK fonts so Korean,
# Japanese and Chinese text shows in the screenshots; installed with apt when missing (unless
# CHROMIUM_PATH names another executable). No browser is downloaded from anywhere else.
BROWSER_PACKAGES := chromium fonts-noto-cjk
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
APT_INSTALL = apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	--no-install-recommends $(BROWSER_PACKAGES)
CHROMIUM_HELP = echo "make browser: could not install Debian's $(BROWSER_PACKAGES); install them \
with apt-get (as root), or set CHROMIUM_PATH to a Chromium executable" >&2; exit 1

browser:  ## install Debian's chromium (and CJK fonts) for the browser tests when missing
	@if [ -n "$${CHROMIUM_PATH:-}" ] && [ -x "$${CHROMIUM_PATH}" ]; then :; \
	elif [ -x /usr/bin/chromium ] && [ -e $(CJK_FONT) ]; then :; \
	elif [ "$$(id -u)" -eq 0 ]; then { $(APT_INSTALL); } || { $(CHROMIUM_HELP); }; \
	elif command -v sudo >/dev/null 2>&1; then { sudo sh -c '$(APT_INSTALL)'; } || { $(CHROMIUM_HELP); }; \
	else $(CHROMIUM_HELP); fi

# Debian's libfaketime, which moves the clock of test-clock's processes; installed with apt when
# missing, like the browser.
faketime:
	@if command -v faketime >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" -eq 0 ]; then apt-get update && apt-get install -y --no-install-recommends faketime; \
	elif command -v sudo >/dev/null 2>&1; then sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends faketime'; \
	else echo "make faketime: install Debian's faketime package with apt-get (as root)" >&2; exit 1; fi

# Debian's nginx, the edge of the distributed mode (deploy/nginx) that the end-to-end tests and the
# benchmarks go through; installed with apt when missing, like faketime. Its packaged service is
# never started: deploy/local/edge.py runs nginx with a config of its own.
edge:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" -eq 0 ]; then apt-get update && apt-get install -y --no-install-recommends nginx; \
	elif command -v sudo >/dev/null 2>&1; then sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends nginx'; \
	else echo "make edge: install Debian's nginx package with apt-get (as root)" >&2; exit 1; fi

# Helm and kubeconform, which check deploy/helm (tests/deploy/test_helm.py), promtool, which
# checks deploy/observability's alert rules (tests/deploy/test_observability.py), and an
# OpenTelemetry Collector with the OTLP receiver and the file exporter only (deploy/otelcol), which
# receives the processes' traces in tests/deploy/test_traces.py: Go programs built from the Go
# module proxy with the machine's Go, once per version, into the download cache of
# deploy/local/services.py. OPS_TOOLS names the directory the tests take them from. promtool
# comes with all of Prometheus' modules: its first build takes about 10 minutes on 2 cores; the
# collector's, 5 to 8 (7 min 22 s with empty Go caches, at the lowest priority on a 2-core
# machine busy with other builds). The collector is keyed by its sources too, so a change to them
# builds it again.
HELM_VERSION := 3.22.0
KUBECONFORM_VERSION := 0.8.0
PROMETHEUS_MODULE_VERSION := 0.316.0
OTELCOL_VERSION := 0.161.0
OTELCOL_SOURCES := $(addprefix deploy/otelcol/,go.mod go.sum main.go)
OTELCOL_DIR = otelcol-$(OTELCOL_VERSION)-$(shell cat $(OTELCOL_SOURCES) | sha256sum | cut -c1-12)
OPS_TOOLS ?= $${XDG_CACHE_HOME:-$$HOME/.cache}/user-insights/go-tools
GO_BUILD = GOBIN="$$tools/$(1)" GOFLAGS=-trimpath go install $(2)
ops-tools:
	@set -e; tools="$(OPS_TOOLS)"; \
	[ -x "$$tools/helm-$(HELM_VERSION)/helm" ] \
		|| $(call GO_BUILD,helm-$(HELM_VERSION),helm.sh/helm/v3/cmd/helm@v$(HELM_VERSION)); \
	[ -x "$$tools/kubeconform-$(KUBECONFORM_VERSION)/kubeconform" ] \
		|| $(call GO_BUILD,kubeconform-$(KUBECONFORM_VERSION),github.com/yannh/kubeconform/cmd/kubeconform@v$(KUBECONFORM_VERSION)); \
	[ -x "$$tools/promtool-$(PROMETHEUS_MODULE_VERSION)/promtool" ] \
		|| $(call GO_BUILD,promtool-$(PROMETHEUS_MODULE_VERSION),github.com/prometheus/prometheus/cmd/promtool@v$(PROMETHEUS_MODULE_VERSION)); \
	[ -x "$$tools/$(OTELCOL_DIR)/insights-otelcol" ] \
		|| (cd deploy/otelcol && GOFLAGS="-trimpath -buildvcs=false" go build \
			-o "$$tools/$(OTELCOL_DIR)/insights-otelcol" .)

# Keycloak, the real OpenID provider of the single sign-on tests (tests/sso): fetched once from
# Maven Central and started on loopback by deploy/local/services.py, unless KEYCLOAK_URL names
# one. `make test` starts it in the background while the checks before the tests run (a first
# fetch and start take about 2 minutes on 2 cores, a later start about 20 s); the tests that
# need it wait for it. It keeps running, like the other servers (`make services-down` stops it).
keycloak:  ## start Keycloak on loopback for the single sign-on tests; prints its endpoint
	python3 deploy/local/services.py up keycloak

keycloak-background:
	@mkdir -p test-artifacts
	@if [ -z "$${KEYCLOAK_URL:-}" ]; then \
		nohup python3 deploy/local/services.py up keycloak \
			>/dev/null 2>test-artifacts/keycloak.log </dev/null & \
	fi

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

e2e: sync browser edge ops-tools
	$(SERVICES_ENV) && $(UV) run pytest -m e2e

schemas: sync  ## regenerate the event schema snapshots after a deliberate contract change
	$(UV) run python -m insights_contracts.schema

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
