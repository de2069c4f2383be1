# syntax=docker/dockerfile:1.7
#
# DigitalMask API image (CPU): `dmask serve`, `dmask db upgrade`, and the CPU-fallback worker.
#
#   docker build -f docker/api.Dockerfile -t digitalmask/api:0.1.0 .
#
# Build arguments
#   PYTHON_IMAGE      base of both stages; an exact tag. For reproducible builds pin the digest too:
#                     --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
#                     (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it).
#   TORCH_VERSION     must equal the pin in pyproject.toml (torch==2.13.0).
#   TORCH_INDEX_URL   where torch comes from; the CPU build keeps this image ~1 GB smaller than CUDA.
#
# Building needs PyPI and download.pytorch.org; the image itself never goes online.
#
# Runtime contract
#   * runs as uid/gid 10001 (non-root); the root filesystem may be mounted read-only:
#     every write goes to /tmp (TMPDIR, caches) or /var/lib/dmask (DMASK_HOME), both volumes.
#   * model weights are inside the image (verified against models/weights/CHECKSUMS.sha256):
#     nothing is downloaded at run time, so the image runs air-gapped.
#   * HEALTHCHECK probes GET /livez on port 8000.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --------------------------------------------------------------------------------------------
# builder: compilers for any dependency that has no wheel; everything lands in /opt/venv
# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# The build context is an allow-list (.dockerignore): package sources, migrations, weights.
COPY . /app

# Refuse to build an image whose bundled weights are missing or altered.
WORKDIR /app/models/weights
RUN sha256sum --check --strict CHECKSUMS.sha256

WORKDIR /app
# torch==2.13.0 in pyproject is satisfied by the 2.13.0+cpu build installed above.
RUN pip install --no-cache-dir /app \
    && python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')" \
    && python -m compileall -q -j 0 /opt/venv /app \
    && chmod -R a+rX /opt/venv /app

# --------------------------------------------------------------------------------------------
# runtime: no compilers, non-root, read-only-rootfs friendly
# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="digitalmask-api" \
      org.opencontainers.image.description="DigitalMask face-privacy ingestion API (CPU)" \
      org.opencontainers.image.licenses="Proprietary; bundled model weights Apache-2.0"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# tini: PID 1 that forwards SIGTERM and reaps zombies. libglib2.0-0: OpenCV's only system dependency.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${APP_GID}" dmask \
    && useradd --system --uid "${APP_UID}" --gid dmask --home-dir /home/dmask --create-home \
       --shell /usr/sbin/nologin dmask \
    && install -d -o dmask -g dmask -m 0750 /var/lib/dmask

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# /app first on sys.path: services.migrate finds migrations/ and alembic.ini next to the packages.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    HOME=/home/dmask \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/.torchinductor \
    HF_HUB_OFFLINE=1 \
    DMASK_HOME=/var/lib/dmask \
    DMASK_DEVICE=cpu

WORKDIR /app
VOLUME ["/tmp", "/var/lib/dmask"]
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4)"]

ENTRYPOINT ["tini", "--", "dmask"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
