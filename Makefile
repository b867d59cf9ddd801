# Workload scheduler: developer entry points. `make` alone lists them.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEVSTACK := $(PY) -m scheduler_site.devstack
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes, each with its own embedded stack (tests/stack_plugin.py); 0 = one.
PYTEST_WORKERS ?= 2
CHAOS_RUNS ?= 5
CHAOS_TASKS ?= 6000
CHAOS_ARGS ?=
# Settings need a secret when DEBUG is off; one-shot commands get a random one.
RANDOM_SECRET = $$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')

.DEFAULT_GOAL := help
.PHONY: help venv browser dev test lint bench bench-million chaos clean-dev

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv and install requirements-dev.txt (when changed)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@

browser: ## Install Debian's chromium and chromedriver if missing (needs root)
	.ci/install-chromium

dev: venv ## Run services, migrations, admin user, web, beat and workers (Ctrl-C stops all)
	$(DEVSTACK) dev

test: venv lint browser ## Lint, check migrations, and run every test against embedded services
	DEBUG=1 $(DEVSTACK) exec -- $(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# mypy's Django plugin imports the settings, which read the service URLs; it
# never connects, so addresses nothing listens on will do.
TYPECHECK_ENV = DEBUG=1 DATABASE_URL=postgres://typecheck@127.0.0.1:1/none \
	REDIS_URL=redis://127.0.0.1:1/0 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1

lint: venv ## ruff (check and format), import contracts (.importlinter), mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(TYPECHECK_ENV) $(VENV)/bin/mypy

# Where `make bench` writes its summary (JSON; bench/lib/summary.py).
BENCH_RESULTS ?= bench-results.json

bench: venv ## Run bench/*.py against a fresh embedded stack; print one summary, write $(BENCH_RESULTS)
	@set -- bench/*.py; if [ ! -e "$$1" ]; then echo "bench: no bench/*.py"; exit 0; fi; \
	rm -f "$(BENCH_RESULTS)"; $(PY) -m bench.lib.summary start "$(BENCH_RESULTS)"; \
	BENCH_RESULTS="$(abspath $(BENCH_RESULTS))" \
	SECRET_KEY="$${SECRET_KEY:-$(RANDOM_SECRET)}" $(DEVSTACK) exec -- sh -ec '\
		$(PY) manage.py migrate --noinput -v 0; \
		for script in bench/*.py; do echo "== $$script"; $(PY) "$$script"; done'
	@echo; $(PY) -m bench.lib.summary "$(BENCH_RESULTS)"

# The million-task run (bench/scale/, which `make bench` does not run): how many
# tasks (a multiple of 1,000; MILLION_TASKS=30000 for a short look), where its
# figures go, and more options (MILLION_ARGS="--purge-old 300000": beat purges
# old tasks during the run; `bench/scale/million.py --help` lists them).
MILLION_TASKS ?= 1000000
MILLION_RESULTS ?= bench-million.json
MILLION_ARGS ?=

bench-million: venv ## MILLION_TASKS tasks through the whole pipeline on a fresh stack; write $(MILLION_RESULTS)
	@rm -f "$(MILLION_RESULTS)"; $(PY) -m bench.lib.summary start "$(MILLION_RESULTS)"
	BENCH_RESULTS="$(abspath $(MILLION_RESULTS))" \
	SECRET_KEY="$${SECRET_KEY:-$(RANDOM_SECRET)}" $(DEVSTACK) exec -- sh -ec '\
		$(PY) manage.py migrate --noinput -v 0; \
		$(PY) bench/scale/million.py --tasks $(MILLION_TASKS) $(MILLION_ARGS)'
	@echo; $(PY) -m bench.lib.summary "$(MILLION_RESULTS)"

chaos: venv ## Run every fault scenario CHAOS_RUNS times (~30 min); writes docs/reliability.md
	$(PY) -m tests.chaos --runs $(CHAOS_RUNS) --tasks $(CHAOS_TASKS) \
		--markdown docs/reliability.md --json docs/reliability.json $(CHAOS_ARGS)

clean-dev: venv ## Delete .devstack/ (dev database, logs, credentials) if nothing runs
	$(DEVSTACK) clean
