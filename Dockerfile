# One image runs every role of the stack: the control plane (`xdscp serve`), Envoy and etcd
# (from their PyPI wheels), demo backends (`xdscp backend`) and the end-to-end test runner.
# BASE: any image with Python >= 3.11 and the venv module; `make e2e-compose` passes one made
# locally with debootstrap on machines that cannot pull from a registry.
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/xdscp/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

WORKDIR /src
# .docker/ may hold a CA bundle (ca.pem) for package indexes behind a TLS-inspecting proxy;
# `make e2e-compose` copies the host's there. It is used for the install step only.
COPY .docker/ /tmp/build-extra/
COPY pyproject.toml ./
# Dependencies first, against an empty stand-in package and README: this layer is rebuilt
# only when pyproject.toml changes, not on every source or README change.
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    python3 -m venv /opt/xdscp; \
    mkdir xdscp && touch xdscp/__init__.py README.md; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet '.[dev]'; \
    rm -rf xdscp README.md build
COPY README.md ./
COPY xdscp ./xdscp
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet --no-deps --force-reinstall .; \
    rm -rf build /tmp/build-extra
# Not part of the installed package: copied after the install so that editing them does not
# re-run it. The compose stack uses the entry scripts, the Envoy bootstrap and the e2e suite.
COPY tests ./tests
COPY envoy ./envoy
COPY scripts ./scripts

ENTRYPOINT ["xdscp"]
CMD ["--help"]
