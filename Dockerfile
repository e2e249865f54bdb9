# syntax=docker/dockerfile:1
# okrsync's container image: `docker build -t okrsync:0.1.0 .` (docs/deployment.md, "Container image").
# Two stages: the first builds the wheel and a virtualenv with it (and the PostgreSQL driver);
# the second holds only that virtualenv on a slim Python, run by a user without privileges.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md config.example.toml ./
COPY okrsync ./okrsync
COPY connectors ./connectors
COPY mappings ./mappings
COPY docs ./docs
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/okrsync \
    && /opt/okrsync/bin/pip install "$(echo /dist/okrsync-*.whl)[postgres]" \
    && /opt/okrsync/bin/okrsync --version

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/okrsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OKRSYNC_CONFIG=/etc/okrsync/okrsync.toml
RUN groupadd --system --gid 10001 okrsync \
    && useradd --system --uid 10001 --gid okrsync --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin okrsync \
    && mkdir -p /data /etc/okrsync \
    && chown okrsync:okrsync /data \
    && chmod 0700 /data
# The virtualenv and the config belong to root: the service can read them, not change them.
COPY --from=build --chown=root:root /opt/okrsync /opt/okrsync
COPY --chown=root:root deploy/container.toml /etc/okrsync/okrsync.toml
COPY --chown=root:root mappings /etc/okrsync/mappings
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# The dashboard, /api/v1/ and the probes. deploy/container.toml binds 0.0.0.0 inside the
# container with [web] auth = "token" (name:token lines in /run/secrets/okrsync_web_tokens:
# without them the container exits 2); /healthz stays open, so the HEALTHCHECK needs no token.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["okrsync", "run"]
