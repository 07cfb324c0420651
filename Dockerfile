# syntax=docker/dockerfile:1
# SeFa Studio: the Streamlit editor on port 8501, with the built-in DigiFace1M DCGAN.
#
#   CPU (default):  docker build -t sefa-studio .
#                   docker run -p 8501:8501 sefa-studio
#   CUDA:           docker build -t sefa-studio:cuda \
#                     --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#                     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#                   docker run --gpus all -p 8501:8501 sefa-studio:cuda
#
# Your own checkpoints: mount them and a config that lists them, e.g.
#   docker run -p 8501:8501 -v $PWD/checkpoints:/app/checkpoints -v $PWD/config.yaml:/app/config.yaml sefa-studio

ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The CUDA base images carry no Python; the python images skip the apt step.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv "$VIRTUAL_ENV" \
    && useradd --create-home --uid 1000 studio

WORKDIR /app

# Dependencies first, in their own layers: a code change does not reinstall torch.
# torch comes from the CPU (or CUDA) index; "+cpu" satisfies the lock's torch==2.13.0.
COPY pyproject.toml requirements-lock.txt ./
RUN pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c requirements-lock.txt -r /tmp/requirements.txt \
    # The default model's weights; its declared dependencies (torchvision, wandb, ...) are not wanted.
    && pip install --no-deps gan-face-generate==1.1.1

COPY . .
RUN pip install --no-deps . \
    && mkdir -p checkpoints direction_sets \
    && chown -R studio /app
USER studio

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
