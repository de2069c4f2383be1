# syntax=docker/dockerfile:1.7
#
# DigitalMask GPU worker image: `dmask worker` (Celery, queue DMASK_QUEUE_NAME, default "gpu").
#
#   docker build -f docker/worker.Dockerfile -t digitalmask/worker:0.1.0 .
#
# Build arguments
#   CUDA_IMAGE        runtime base; its CUDA major.minor must match TORCH_CUDA. Exact tag; for
#                     reproducible builds pin the digest too (CUDA_IMAGE=nvidia/cuda:<tag>@sha256:<digest>).
#   TORCH_VERSION     must equal the pin in pyproject.toml (torch==2.13.0).
#   TORCH_CUDA        the PyTorch wheel index variant of the same torch version:
#                     https://download.pytorch.org/whl/${TORCH_CUDA}. torch 2.13.0 is built against
#                     CUDA 13.0 (cu130, needs an NVIDIA driver >= 580 on the nodes). For older drivers
#                     build a 12.x variant where the index carries one for this torch version, e.g.
#                       --build-arg TORCH_CUDA=cu128 \
#                       --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
#   PYTHON_VERSION    CPython installed by uv (python-build-standalone): Ubuntu 22.04 ships 3.10 only.
#   UV_IMAGE          pinned uv release used in the builder stage only.
#
# Building needs PyPI, download.pytorch.org and uv's CPython downloads (python-build-standalone);
# the image itself never goes online.
#
# Runtime contract
#   * runs as uid/gid 10001 (non-root), root filesystem may be read-only: writes go to /tmp and
#     /var/lib/dmask (volumes); the heartbeat file lives in /tmp.
#   * model weights are inside the image (checksum-verified at build): runs air-gapped.
#   * HEALTHCHECK: the worker touches DMASK_WORKER_HEARTBEAT_FILE every
#     DMASK_WORKER_HEARTBEAT_INTERVAL_S (5 s); the container is unhealthy once the file is older
#     than WORKER_HEARTBEAT_MAX_AGE_S (60 s) or missing. (`celery inspect ping` is not used: it needs
#     the broker and answers late while a GPU batch holds the process.)

ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# --------------------------------------------------------------------------------------------
# builder: compilers, uv-managed CPython 3.11, CUDA torch and the app in /opt/venv
# --------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv

ARG PYTHON_VERSION=3.11.14
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu130
RUN uv pip install --python /opt/venv/bin/python \
        --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==${TORCH_VERSION}" \
    && python -c "import sys, torch; v = torch.version.cuda or ''; sys.exit(not ('cu' + v.replace('.', '')).startswith('${TORCH_CUDA}'))"

COPY . /app

WORKDIR /app/models/weights
RUN sha256sum --check --strict CHECKSUMS.sha256

WORKDIR /app
# torch==2.13.0 in pyproject is satisfied by the 2.13.0+cuXXX build installed above.
RUN uv pip install --python /opt/venv/bin/python /app \
    && python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')" \
    && python -m compileall -q -j 0 /app \
    && chmod -R a+rX /opt/python /opt/venv /app

# --------------------------------------------------------------------------------------------
# runtime: CUDA runtime + cuDNN base, no compilers, non-root
# --------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="digitalmask-worker" \
      org.opencontainers.image.description="DigitalMask GPU masking worker (Celery)" \
      org.opencontainers.image.licenses="Proprietary; bundled model weights Apache-2.0"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini libglib2.0-0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${APP_GID}" dmask \
    && useradd --system --uid "${APP_UID}" --gid dmask --home-dir /home/dmask --create-home \
       --shell /usr/sbin/nologin dmask \
    && install -d -o dmask -g dmask -m 0750 /var/lib/dmask

COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    HOME=/home/dmask \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/.torchinductor \
    HF_HUB_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DMASK_HOME=/var/lib/dmask \
    DMASK_DEVICE=cuda \
    DMASK_WORKER_HEARTBEAT_FILE=/tmp/dmask-worker.heartbeat \
    WORKER_HEARTBEAT_MAX_AGE_S=60

WORKDIR /app
VOLUME ["/tmp", "/var/lib/dmask"]
USER 10001:10001

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/bin/sh", "-c", "f=\"$DMASK_WORKER_HEARTBEAT_FILE\"; test -f \"$f\" && test $(( $(date +%s) - $(stat -c %Y \"$f\") )) -lt \"$WORKER_HEARTBEAT_MAX_AGE_S\""]

ENTRYPOINT ["tini", "--", "dmask"]
CMD ["worker"]
