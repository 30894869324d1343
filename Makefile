# Thin targets; CI calls the same ones. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY_DIRS := packages data-collector model-training api-service pipeline benchmarks deployment conftest.py
PY_SRC := packages/mushroom-common/src data-collector/src model-training/src api-service/src pipeline/src benchmarks

.PHONY: setup setup-python setup-frontend setup-browser run test lint typecheck check-client test-python test-frontend test-e2e pipeline bench clean

setup: setup-python setup-frontend

setup-python:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet --user "uv>=0.5,<1" || python3 -m pip install --quiet "uv>=0.5,<1"
	$(UV) sync --frozen --all-packages --all-extras

setup-frontend:
	cd frontend-react && npm ci --no-audit --no-fund && npm run build

setup-browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(UV) run mushroom-api

lint:
	$(UV) run ruff check $(PY_DIRS)
	$(UV) run ruff format --check $(PY_DIRS)

typecheck:
	$(UV) run mypy $(PY_SRC)

check-client:
	bash frontend-react/scripts/check-client.sh

test-python:
	$(UV) run pytest -q --cov --cov-report= packages data-collector model-training api-service pipeline deployment benchmarks
	$(UV) run python deployment/scripts/coverage_table.py

test-frontend:
	cd frontend-react && npm run lint && npm test

test-e2e: setup-browser
	cd frontend-react && npm run test:e2e

test: setup setup-browser lint typecheck check-client test-python test-frontend test-e2e

pipeline: setup-python
	$(UV) run mushroom-pipeline run --import-folder ../shared/data/mushroomvision --import-folder ../shared/data/nordic-field

bench: setup-python
	$(UV) run python benchmarks/inference.py
	$(UV) run python benchmarks/api_load.py
	$(UV) run python benchmarks/train.py

clean:
	rm -rf .venv frontend-react/node_modules frontend-react/dist mushroom-data
