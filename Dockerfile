# syntax=docker/dockerfile:1.7
# tsdl on the official Ray images: Ray 2.60.0, Python 3.11. Two targets:
#   cpu  rayproject/ray:2.60.0-py311 + CPU torch: the Ray head (driver), the submitter, kind
#   gpu  rayproject/ray:2.60.0-py311-gpu + CUDA torch: the GPU workers (the default target)
#   docker build --target cpu -t ghcr.io/tsdl/tsdl:0.1.0-cpu .
#   docker build --target gpu -t ghcr.io/tsdl/tsdl:0.1.0-gpu .
# .github/workflows/image.yml builds and pushes both on a version tag. On arm64 (Apple Silicon)
# build the cpu target with --build-arg RAY_CPU_IMAGE=rayproject/ray:2.60.0-py311-aarch64.
# The Ray images' user `ray` (uid 1000, gid 100 `users`) owns the Python env; the Helm chart's
# securityContext runs every container as that uid with a read-only root filesystem.
# The cpu and gpu stages are the same instructions on another base image and torch index. They
# stay two copies because a stage cannot see which --target was asked for: one shared stage would
# need a --build-arg that repeats the target on every build. tests/deploy/test_dockerfile.py
# fails when they differ in anything else (comments aside).
ARG RAY_CPU_IMAGE=rayproject/ray:2.60.0-py311
ARG RAY_GPU_IMAGE=rayproject/ray:2.60.0-py311-gpu

# --- build: a wheel of tsdl only (pure Python; dependencies resolve in the final stages) ------
FROM ${RAY_CPU_IMAGE} AS build
WORKDIR /home/ray/src
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 tsdl ./tsdl
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /home/ray/wheels .

# --- cpu: head, submitter and CPU-only clusters -----------------------------------------------
FROM ${RAY_CPU_IMAGE} AS cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# No compilers in the final image: purge the base image's toolchain (only packages that are
# installed; lib* runtime packages stay). Nothing compiles at run time then (no torch.compile,
# no runtime_env pip installs of sdists); the layers below the purge keep their size.
USER 0
RUN mapfile -t pkgs < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
        build-essential cmake make gcc g++ 'gcc-[0-9][0-9]' 'g++-[0-9][0-9]' 2>/dev/null \
        | awk '$1 == "ii" {print $2}'); \
    if [ "${#pkgs[@]}" -gt 0 ]; then \
        apt-get purge -y --auto-remove "${pkgs[@]}"; \
    fi; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*
USER 1000:100

# Dependencies at the versions of the environment whose tests passed (docker/constraints.txt,
# `make constraints`: the runtime closure of tsdl's requirements), not whatever resolves on the
# day of the build; MLflow = the server image's. They are a layer of their own, below tsdl's
# wheel: a change to tsdl's code rebuilds the few-MB layer under it, not torch's GBs.
COPY --chown=1000:100 docker/constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX_URL}" \
    && pip install --no-cache-dir -r /tmp/constraints.txt
COPY --from=build --chown=1000:100 /home/ray/wheels /tmp/wheels
# After the compiler purge: the image must still import and run what the pods run (-c again: a
# dependency added to pyproject.toml since `make constraints` still installs, at its pin if any).
RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/wheels/tsdl-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && tsdl --version \
    && ray --version \
    && python -c "import ray, torch, tsdl; assert ray.__version__ == '2.60.0', ray.__version__"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.matplotlib
WORKDIR /home/ray
LABEL org.opencontainers.image.title="tsdl (cpu)" \
      org.opencontainers.image.description="Train and tune time-series deep-learning models on Ray/KubeRay; CPU torch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tsdl/tsdl"
# KubeRay sets the container command (ray start ... / ray job submit ...); this is for `docker run`.
CMD ["tsdl", "--help"]

# --- gpu: the workers (default target) ----------------------------------------------------------
FROM ${RAY_GPU_IMAGE} AS gpu
# torch's CUDA wheels bundle their own CUDA runtime; cu128 needs an NVIDIA driver >= 570.
ARG TORCH_VERSION=2.13.0
ARG TORCH_GPU_INDEX_URL=https://download.pytorch.org/whl/cu128
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# No compilers in the final image: purge the base image's toolchain (only packages that are
# installed; lib* runtime packages stay). Nothing compiles at run time then (no torch.compile,
# no runtime_env pip installs of sdists); the layers below the purge keep their size.
USER 0
RUN mapfile -t pkgs < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
        build-essential cmake make gcc g++ 'gcc-[0-9][0-9]' 'g++-[0-9][0-9]' 2>/dev/null \
        | awk '$1 == "ii" {print $2}'); \
    if [ "${#pkgs[@]}" -gt 0 ]; then \
        apt-get purge -y --auto-remove "${pkgs[@]}"; \
    fi; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*
USER 1000:100

# Dependencies at the versions of the environment whose tests passed (docker/constraints.txt,
# `make constraints`: the runtime closure of tsdl's requirements), not whatever resolves on the
# day of the build; MLflow = the server image's. They are a layer of their own, below tsdl's
# wheel: a change to tsdl's code rebuilds the few-MB layer under it, not torch's GBs.
COPY --chown=1000:100 docker/constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_GPU_INDEX_URL}" \
    && pip install --no-cache-dir -r /tmp/constraints.txt
COPY --from=build --chown=1000:100 /home/ray/wheels /tmp/wheels
# After the compiler purge: the image must still import and run what the pods run (-c again: a
# dependency added to pyproject.toml since `make constraints` still installs, at its pin if any).
RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/wheels/tsdl-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && tsdl --version \
    && ray --version \
    && python -c "import ray, torch, tsdl; assert ray.__version__ == '2.60.0', ray.__version__"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.matplotlib
WORKDIR /home/ray
LABEL org.opencontainers.image.title="tsdl (gpu)" \
      org.opencontainers.image.description="Train and tune time-series deep-learning models on Ray/KubeRay; CUDA torch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tsdl/tsdl"
# KubeRay sets the container command (ray start ... / ray job submit ...); this is for `docker run`.
CMD ["tsdl", "--help"]
