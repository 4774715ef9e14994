# syntax=docker/dockerfile:1
# The sagestack runtime image: KFP components (components/image.py pins ghcr.io/sagestack/sagestack:<version>),
# the endpoints, the MLflow and Feast servers and the retraining job of k8s/ all run it.
#   CPU (default):  docker build -t ghcr.io/sagestack/sagestack:0.1.0 .
#   GPU (BERT):     docker build --target gpu -t ghcr.io/sagestack/sagestack:0.1.0-gpu .
# Both install exactly requirements/lock.txt into one virtual environment on the same Python as `make`
# (3.11); the final stages hold no compiler, no pip cache and run as an unprivileged user.

ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

# ---- build: the locked stack and the sagestack wheel in /opt/venv ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements/lock.txt requirements/lock.txt
# torch==2.13.0+cpu comes from PyTorch's CPU index, as the Makefile installs it.
RUN /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/lock.txt
# One distribution, one top-level name: setup.py installs the adapter folders as sagestack.components, .pipelines,
# .bento (the BentoML service), .console and .feature_repo.
COPY pyproject.toml setup.py README.md ./
COPY src/ src/
COPY components/ components/
COPY pipelines/ pipelines/
COPY feature_repo/ feature_repo/
COPY serving/ serving/
COPY console/ console/
RUN /opt/venv/bin/pip wheel --no-deps --no-build-isolation -w /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/sagestack-*.whl \
    && /opt/venv/bin/pip check

# ---- build-gpu: the same lock with torch's CUDA build (its CUDA libraries come as wheels) ----------
FROM build AS build-gpu
# The lock's other packages stay as installed; only torch is swapped for its CUDA build of the same version.
ARG TORCH_CUDA=cu128
RUN /opt/venv/bin/pip uninstall -y torch \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/${TORCH_CUDA} \
        --extra-index-url https://pypi.org/simple "torch==2.13.0+${TORCH_CUDA}" \
    && /opt/venv/bin/pip check

# ---- base: the unprivileged user and the environment both final images share ----------------------
FROM ${PYTHON_IMAGE} AS base
RUN groupadd --gid 10001 sagestack \
    && useradd --uid 10001 --gid 10001 --home-dir /home/sagestack --create-home --shell /usr/sbin/nologin sagestack \
    && mkdir -p /var/lib/sagestack && chown 10001:10001 /var/lib/sagestack
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SAGESTACK_HOME=/var/lib/sagestack BENTOML_HOME=/tmp/bentoml BENTOML_DO_NOT_TRACK=true
WORKDIR /home/sagestack
EXPOSE 3000
CMD ["sagestack", "--help"]

# ---- gpu: CUDA torch, for the BERT branch's GPU step (`--target gpu`) -----------------------------
FROM base AS gpu
COPY --from=build-gpu /opt/venv /opt/venv
USER 10001:10001

# ---- runtime (CPU): the default target, last so that a plain `docker build .` builds it -----------
FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
