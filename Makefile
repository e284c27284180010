# The two commands of the README:
#   make run   - create .venv, install the pinned requirements, serve the backend on :9090 (gunicorn, _wsgi:app)
#   make test  - install the test tools and Label Studio (its own .venv-label-studio), run lint and every test
# Everything is installed with pip (it reads this machine's local torch wheels; uv/poetry would download ~3 GB).

PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-label-studio
LABEL_STUDIO_VERSION := 1.23.2
PORT ?= 9090
WORKERS ?= 1
THREADS ?= 4

export YOLO_OFFLINE ?= 0
export YOLO_CONFIG_DIR ?= $(CURDIR)/.cache/ultralytics

.PHONY: run dev test lint install install-test clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -qq -r requirements.txt
	$(VENV)/bin/pip install --disable-pip-version-check -qq --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(VENV)/bin/pip install --disable-pip-version-check -qq -r requirements-test.txt
	touch $@

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --disable-pip-version-check -qq label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

install: $(VENV)/.runtime

install-test: $(VENV)/.test $(LS_VENV)/.installed

run: install
	$(VENV)/bin/gunicorn --bind :$(PORT) --workers $(WORKERS) --threads $(THREADS) --timeout 300 _wsgi:app

dev: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/label-studio-ml start . --port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install-test lint
	YOLO_OFFLINE=1 $(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(LS_VENV) .cache .pytest_cache .mypy_cache .ruff_cache
