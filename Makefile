# One task runner for people and CI. `make run` and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install system-deps run test lint format bench clean zendesk-package

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(BIN)/commerce-context demo

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
CHROMIUM := /usr/bin/chromium
system-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium: sudo apt-get install chromium" >&2; exit 2; \
	  fi; \
	fi

test: install system-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check backend tests benchmarks
	$(BIN)/ruff format --check backend tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix backend tests benchmarks
	$(BIN)/ruff format backend tests benchmarks

bench: install
	$(BIN)/python benchmarks/run.py

# The Zendesk app zip to upload: make zendesk-package BACKEND_URL=https://cc.example.com
# (checked before `install` runs, so a forgotten BACKEND_URL fails at once)
ifneq ($(filter zendesk-package,$(MAKECMDGOALS)),)
ifeq ($(strip $(BACKEND_URL)),)
$(error zendesk-package needs the backend URL: make zendesk-package BACKEND_URL=https://commerce-context.example.com)
endif
endif
zendesk-package: install
	$(BIN)/python -m commerce_context.zendesk_package --backend-url "$(BACKEND_URL)" --out dist/commerce-context-zendesk.zip

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
