# One task runner for people and CI. `make run` and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install system-deps redis run test lint format bench cluster-test cluster-soak clean zendesk-package

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The demo's port: make run PORT=8001 (or CC_PORT=8001 make run); 8000 by default.
run: install
	$(BIN)/commerce-context demo $(if $(PORT),--port $(PORT))

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

# The suite needs Redis on 127.0.0.1:6379 (it uses database 15). When none answers and
# redis-server is installed, start a throwaway one (no persistence; it keeps running after).
REDIS_PING = (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 && [[ $$reply == +PONG* ]]) 2>/dev/null
redis:
	@if ! $(REDIS_PING); then \
	  if command -v redis-server >/dev/null; then \
	    echo "starting redis-server on 127.0.0.1:6379 for the tests (log: /tmp/commerce-context-redis.log)"; \
	    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
	      --dir /tmp --logfile /tmp/commerce-context-redis.log; \
	    for _ in $$(seq 50); do $(REDIS_PING) && break; sleep 0.1; done; \
	    $(REDIS_PING) || { echo "redis-server did not start: see /tmp/commerce-context-redis.log" >&2; exit 2; }; \
	  else \
	    echo "The tests need Redis on 127.0.0.1:6379: install it (sudo apt-get install redis-server) or start one." >&2; \
	    exit 2; \
	  fi; \
	fi

test: install system-deps redis
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

# The scale-out proof (docs/cluster.md): three instances, their own Redis, a PostgreSQL schema
# of their own, a load balancer, load and faults; ~4 minutes; exits 1 when a check fails.
# Not part of `make test`. cluster-soak runs the same load SOAK_MINUTES (default 10).
SOAK_MINUTES ?= 10
cluster-test: install
	$(BIN)/python benchmarks/cluster.py

cluster-soak: install
	$(BIN)/python benchmarks/cluster.py --soak $(SOAK_MINUTES)

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
