# syntax=docker/dockerfile:1
#
# Label Studio ML backend for Ultralytics YOLO.
#
#   CPU (default):  docker build -t label-studio-yolo-backend .
#   GPU (CUDA):     docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#                                -t label-studio-yolo-backend:gpu .
#
# The same image serves the web API (default CMD) and the RQ training worker
# (docker-compose.yml overrides the command with `rq worker ...`).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Stage 1: build a self-contained virtualenv with all Python dependencies.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install pip==25.3

# torch/torchvision first, from the chosen PyTorch index. requirements.txt pins
# the same versions, so the next step keeps this (CPU or CUDA) build.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1

COPY requirements.txt requirements-nodeps.txt /tmp/
# label-studio-ml without its stale Flask/Werkzeug pins: see the Makefile's install step.
RUN pip install -r /tmp/requirements.txt \
    && pip install --no-deps -r /tmp/requirements-nodeps.txt

# ---------------------------------------------------------------------------
# Stage 2: slim runtime image.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# libglib2.0-0: needed by OpenCV (headless build needs no libGL).
# libgomp1:     OpenMP runtime used by torch / OpenCV on CPU.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --user-group app \
    && mkdir -p /app /models /data/model-versions /tmp/ultralytics \
    && chown -R app:app /app /models /data /tmp/ultralytics

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    YOLO_OFFLINE=0 \
    MODEL_ROOT=/models \
    MODEL_DIR=/data/model-versions \
    PORT=9090 \
    WORKERS=1 \
    THREADS=16

WORKDIR /app
COPY --chown=app:app . /app

USER app

VOLUME ["/models", "/data"]
EXPOSE 9090

# No curl in the slim image: probe /health on $PORT with the standard library, sending BASIC_AUTH_USER/PASS if set.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD python -m label_studio_yolo.healthcheck /health

# gunicorn reads /app/gunicorn.conf.py, as `make run` does: the ASGI front on ${PORT}, ${WORKERS} processes of
# ${THREADS} request threads, read from the environment at start. gunicorn is PID 1 and gets the signals: on SIGTERM
# (docker stop, Kubernetes) it lets requests finish for 100 s, as a /predict may take PREDICT_TIME_BUDGET.
CMD ["gunicorn"]
