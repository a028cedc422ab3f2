# The CRM API image: one image, three processes (web, worker, beat; see deploy/entrypoint.sh).
#   docker build -t crm .          (or: podman build; scripts/container-smoke.sh builds and runs it here)
# BASE_IMAGE is any Debian bookworm with Python 3.11 and its venv module: the official slim image by
# default; scripts/container-smoke.sh passes one made by debootstrap where no registry is reachable.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
# Every package pinned with its hash (requirements.lock, from pip-compile --generate-hashes): nothing
# unpinned, nothing unverified enters the image. Wheels only: no compiler in either stage.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.lock

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=5000
# The one directory the server writes: metrics' per-process files (a volume shared with the workers in
# compose.yaml takes this owner when it is created).
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /app --no-create-home --shell /usr/sbin/nologin crm \
    && mkdir -p /var/lib/crm-metrics && chown 10001:10001 /var/lib/crm-metrics
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code is root's and read-only to the server (.dockerignore keeps tests, secrets and caches out).
COPY . /app
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
