# syntax=docker/dockerfile:1
# The production image of commerce-context: `docker build -t commerce-context:0.1.0 .`
# (docs/deploy.md). Four stages:
#   build    installs the package and its pinned dependencies into /opt/venv (wheels only)
#   demo     optional (`--target demo`): adds Node and the commercetools emulator for
#            `commerce-context demo`; never deployed
#   prune    the build without the test-and-demo stand-ins (emulator/, demo-only pages)
#   runtime  the last stage, the default target: the virtualenv on a clean slim base, a non-root
#            user, no compilers, no Node, no pip cache
# The base image is pinned to a full version; bump it on purpose (and rebuild for security fixes).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency ships a binary wheel for this platform: no compiler is needed, even here.
COPY pyproject.toml constraints.txt README.md ./
COPY backend ./backend
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --only-binary=:all: --no-compile -c constraints.txt \
        "setuptools==84.2.1" \
    && /opt/venv/bin/pip install --no-build-isolation --no-compile -c constraints.txt . \
    && /opt/venv/bin/pip uninstall --yes setuptools pip \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM build AS demo
# Node runs the commercetools emulator of the demo; the production image has none of this.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
ENV PATH=/opt/venv/bin:$PATH \
    CC_HOST=0.0.0.0
EXPOSE 8000
CMD ["commerce-context", "demo"]

FROM build AS prune
# What a production install does not need: the local stand-ins for commercetools, Zendesk and
# Tidio (emulator/) and the demo's own pages, which are built on them. Nothing else imports them
# (tests/test_deploy_files.py checks it).
RUN rm -rf /opt/venv/lib/python3*/site-packages/commerce_context/emulator \
        /opt/venv/lib/python3*/site-packages/commerce_context/storefront.py \
        /opt/venv/lib/python3*/site-packages/commerce_context/demo_sync.py

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="commerce-context" \
      org.opencontainers.image.description="commercetools shopper context for Zendesk and Tidio"
RUN groupadd --system --gid 10001 cc \
    && useradd --system --uid 10001 --gid cc --no-create-home \
        --home-dir /var/lib/commerce-context --shell /usr/sbin/nologin cc \
    && install --directory --owner=cc --group=cc --mode=0750 /var/lib/commerce-context
COPY --from=prune /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CC_HOST=0.0.0.0 \
    CC_PORT=8000 \
    CC_LOG_FORMAT=json \
    CC_STATE_PATH=/var/lib/commerce-context/state.sqlite3
WORKDIR /var/lib/commerce-context
# The SQLite job database of a single instance lives here; several instances use PostgreSQL.
VOLUME ["/var/lib/commerce-context"]
USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); load balancers check /readyz themselves.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CC_PORT', '8000'), timeout=2)"]
# SIGTERM: finish in-flight requests (CC_SHUTDOWN_TIMEOUT), then hand running jobs back.
STOPSIGNAL SIGTERM
ENTRYPOINT ["commerce-context"]
CMD ["serve"]
