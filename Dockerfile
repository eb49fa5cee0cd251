# OpenMindSpore image: the `oms` command, MindSpore 2.10 (CPU) and Ray 2.60, for `docker run` and for the
# KubeRay manifests in deploy/kuberay/ (the same image runs the Ray head, the workers and the job).
#   docker build -t openmindspore:0.1.0 .
#   docker run --rm --shm-size=2g openmindspore:0.1.0 oms train examples/digits_mlp.yaml --workers 2 --max-steps 50
# The shared-memory collective needs /dev/shm: Docker's default is 64 MB, hence --shm-size.
FROM python:3.11.11-slim-bookworm

ENV GLOG_v=3 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# g++ compiles the project's CPU kernels (models/kernels) at first use; procps gives Ray its `ps`
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ procps \
    && rm -rf /var/lib/apt/lists/*

# a non-root user owns the application and its runs (KubeRay's images use uid 1000 as well)
RUN useradd --create-home --uid 1000 --shell /bin/bash oms
WORKDIR /home/oms/app

# the project from its own files: dependencies as pinned in pyproject.toml (numpy<2: mindspore.dataset
# breaks on NumPy 2), then the package itself
COPY --chown=oms:oms pyproject.toml README.md ./
COPY --chown=oms:oms src ./src
COPY --chown=oms:oms examples ./examples
RUN pip install "numpy<2" . && oms --version

USER oms
CMD ["oms", "--help"]
