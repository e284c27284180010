# The commands of the README:
#   make run   - create .venv, install the pinned requirements, serve the backend on :9090 (gunicorn, _wsgi:app)
#   make test  - install the test tools and Label Studio (its own .venv-label-studio), run lint and every test
#   make audit - check the installed dependencies against known vulnerabilities (needs the network; not part of test)
# Everything is installed with pip (it reads this machine's local torch wheels; uv/poetry would download ~3 GB).

PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-label-studio
AUDIT_VENV := .venv-audit
PIP_AUDIT_VERSION := 2.10.1
LABEL_STUDIO_VERSION := 1.23.2
PORT ?= 9090
WORKERS ?= 1
THREADS ?= 16

export YOLO_OFFLINE ?= 0
export YOLO_CONFIG_DIR ?= $(CURDIR)/.cache/ultralytics

.PHONY: run dev test lint install install-test audit clean

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
	$(VENV)/bin/gunicorn --bind :$(PORT) --workers $(WORKERS) --threads $(THREADS) --timeout 300 --graceful-timeout 100 _wsgi:app

dev: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/label-studio-ml start . --port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install-test lint
	YOLO_OFFLINE=1 $(VENV)/bin/python -m pytest

# make audit: pip-audit over exactly what .venv holds (runtime and test pins, and every transitive dependency).
# - pip-audit lives in its own venv (.venv-audit), pinned, so its dependencies never mix with the runtime's.
# - It audits .venv's `pip freeze --all` with --no-deps --disable-pip: the exact installed versions, pip included,
#   with no resolver run. `pip-audit -r requirements.txt` would instead resolve the unpinned transitive
#   dependencies afresh (what pip picks today, not what is installed), and `-r requirements.txt --no-deps` would
#   audit only the 13 top-level pins and miss Flask, Werkzeug and Jinja2 (pinned by label-studio-ml).
# - It needs pip-audit's vulnerability service: PyPI's JSON API per release (default) or osv.dev
#   (make audit AUDIT_SERVICE=osv). --strict makes an unreachable service fail the target: without it pip-audit
#   skips every package and still prints "No known vulnerabilities found".
# - Not part of `make test`: CI has no vulnerability service, and new advisories would fail unchanged code.
# - Exit status 1 means a finding outside AUDIT_ACCEPTED: the advisories that README.md "Security and
#   dependencies" lists with what mitigates them (CVE or GHSA ids; pip-audit matches a record by its aliases).
#   See everything with: make audit AUDIT_ACCEPTED=
AUDIT_SERVICE ?= pypi
AUDIT_ACCEPTED ?= CVE-2023-30861 CVE-2026-27205 \
	CVE-2022-29361 CVE-2023-23934 CVE-2023-25577 CVE-2023-46136 CVE-2024-34069 CVE-2024-49766 CVE-2024-49767 \
	CVE-2025-66221 CVE-2026-21860 CVE-2026-27199 GHSA-g6x2-hccm-hh4m \
	CVE-2024-22195 CVE-2024-34064 CVE-2024-56201 CVE-2024-56326 CVE-2025-27516

$(AUDIT_VENV)/.installed:
	$(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install --disable-pip-version-check -qq pip-audit==$(PIP_AUDIT_VERSION)
	touch $@

audit: $(VENV)/.test $(AUDIT_VENV)/.installed
	$(VENV)/bin/pip freeze --all --exclude-editable > $(AUDIT_VENV)/installed.txt
	$(AUDIT_VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off --aliases on \
		--vulnerability-service $(AUDIT_SERVICE) -r $(AUDIT_VENV)/installed.txt \
		$(addprefix --ignore-vuln ,$(AUDIT_ACCEPTED))

clean:
	rm -rf $(VENV) $(LS_VENV) $(AUDIT_VENV) .cache .pytest_cache .mypy_cache .ruff_cache
