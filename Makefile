# Thin targets; CI calls the same ones. `make run` and `make test` are the README's two commands.
# `make run` installs only what serving needs (the API, the contract package, the built web app);
# `make test` and `make dev` install the whole workspace (TensorFlow, MLflow, KFP, linters).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# uv from PATH, else the copy the bootstrap puts in .tools/ (never `pip --user` into the system).
TOOLS_DIR := $(CURDIR)/.tools
export PATH := $(TOOLS_DIR)/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo "$(TOOLS_DIR)/bin/uv")
# Byte-code compiled at install (`--compile-bytecode` on both syncs, compileall for the
# workspace's editable sources), so no start compiles Python from source: with
# PYTHONDONTWRITEBYTECODE set (as in many containers and CI images) every start did, and the
# API's cold start was 4.1 s instead of 1.0 s (benchmarks/RESULTS.md).
HOST ?= 127.0.0.1
PORT ?= 8000
FRONTEND := frontend-react
NPM_STAMP := $(FRONTEND)/node_modules/.package-lock.sha256
PY_DIRS := packages data-collector model-training api-service pipeline benchmarks deployment conftest.py
PY_SRC := packages/mushroom-common/src data-collector/src model-training/src api-service/src pipeline/src benchmarks

.PHONY: help setup setup-uv setup-api setup-python setup-frontend setup-browser setup-postgres check-python \
	check-node frontend-deps run dev test lint typecheck check-client test-python test-frontend test-e2e \
	pipeline bench clean

setup: setup-python setup-frontend ## install everything: the whole workspace and the web app

setup-uv:
	@test -x "$(UV)" || { python3 -m venv "$(TOOLS_DIR)" >/dev/null 2>&1 && "$(TOOLS_DIR)/bin/pip" install --quiet "uv>=0.5,<1"; } \
	  || { echo "Cannot install uv: install it (https://docs.astral.sh/uv/) or Debian's python3-venv (apt-get install python3-venv), then run make again." >&2; exit 1; }

check-python: setup-uv
	@UV_PYTHON_DOWNLOADS=never $(UV) python find 3.11 >/dev/null 2>&1 \
	  || { echo "Python 3.11 is missing: install it (Debian 12: apt-get install python3; others: uv python install 3.11), then run make again." >&2; exit 1; }

check-node:
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null && command -v npm >/dev/null \
	  || { echo "Node.js 20.19 or newer with npm is missing (Debian 12's own nodejs is 18): install Node.js 20 (nodejs.org, NodeSource or nvm), then run make again." >&2; exit 1; }

# The workspace's own packages are editable installs (not in site-packages): compiled here.
API_SRC := packages/mushroom-common/src api-service/src
setup-api: check-python
	$(UV) sync --frozen --inexact --no-dev --package mushroom-api --compile-bytecode
	$(UV) run --no-sync python -m compileall -q $(API_SRC)

setup-python: check-python
	$(UV) sync --frozen --all-packages --all-extras --compile-bytecode
	$(UV) run --no-sync python -m compileall -q $(PY_SRC)

# npm ci only when node_modules was installed from a different package-lock.json, or without the
# dev packages that tests need. `make run` needs only what builds the app (NPM_OMIT=dev: no test
# tools, about a tenth of the packages); a full install serves both.
NPM_OMIT ?=
frontend-deps: check-node
	@want="$$(sha256sum $(FRONTEND)/package-lock.json | cut -d' ' -f1)"; have="$$(cat $(NPM_STAMP) 2>/dev/null || true)"; \
	if [ "$$have" = "$$want all" ] || [ -n "$(NPM_OMIT)" -a "$$have" = "$$want omit-$(NPM_OMIT)" ]; then echo "node_modules matches package-lock.json: npm ci skipped"; \
	else (cd $(FRONTEND) && npm ci --no-audit --no-fund $(if $(NPM_OMIT),--omit=$(NPM_OMIT))) && echo "$$want $(if $(NPM_OMIT),omit-$(NPM_OMIT),all)" > $(NPM_STAMP); fi

# The web app, rebuilt only when a source file is newer than the last build (type checks: make lint).
FRONTEND_INPUTS := $(shell find $(FRONTEND)/src $(FRONTEND)/public $(FRONTEND)/sw $(FRONTEND)/vite-plugins -type f 2>/dev/null) \
	$(wildcard $(FRONTEND)/index.html $(FRONTEND)/vite.config.ts $(FRONTEND)/package-lock.json)
$(FRONTEND)/dist/index.html: $(FRONTEND_INPUTS) | frontend-deps
	cd $(FRONTEND) && npx vite build --logLevel warn

setup-frontend: frontend-deps $(FRONTEND)/dist/index.html

setup-browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The store's tests start their own PostgreSQL server from Debian's binaries (never a service).
setup-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Python packages and npm packages download side by side; then the server starts.
run: ## install what serving needs and serve the API and web app (HOST=127.0.0.1 PORT=8000)
	$(MAKE) --no-print-directory -j2 setup-api setup-frontend NPM_OMIT=dev
	$(UV) run --no-sync mushroom-api --host $(HOST) --port $(PORT)

dev: setup ## install everything, for development (TensorFlow, MLflow, KFP, linters)

lint: ## ruff check + ruff format --check on every Python folder
	$(UV) run ruff check $(PY_DIRS)
	$(UV) run ruff format --check $(PY_DIRS)

typecheck: ## mypy strict on every package
	$(UV) run mypy $(PY_SRC)

check-client: ## fail when the generated API client differs from openapi.json
	bash frontend-react/scripts/check-client.sh

test-python: ## every pytest test (with line coverage per package)
	$(UV) run pytest -q --cov --cov-report= packages data-collector model-training api-service pipeline deployment benchmarks
	$(UV) run python deployment/scripts/coverage_table.py

test-frontend: setup-frontend ## ESLint, tsc and Vitest
	cd $(FRONTEND) && npm run lint && npm test

test-e2e: setup-browser setup-frontend ## Playwright against the built app in Chromium
	cd $(FRONTEND) && npm run test:e2e:built

test: setup setup-browser setup-postgres lint typecheck check-client test-python test-frontend test-e2e ## install everything and run every check and test (what CI runs)

pipeline: setup-python ## photos in ../shared/data to a promoted model (about 60 min on 2 cores)
	$(UV) run mushroom-pipeline run --import-folder ../shared/data/mushroomvision --import-folder ../shared/data/nordic-field --import-folder ../shared/data/web-species --field-data-root ../shared/data

bench: setup-python ## the benchmarks (inference, API load, hot path, training speed)
	$(UV) run python benchmarks/inference.py
	$(UV) run python benchmarks/api_load.py
	$(UV) run python benchmarks/hot_path.py
	$(UV) run python benchmarks/train.py

help: ## list these targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## (.*)/\1\t\2/' | awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'

clean: ## remove .venv, .tools, node_modules, the built app and mushroom-data
	rm -rf .venv .tools $(FRONTEND)/node_modules $(FRONTEND)/dist mushroom-data
