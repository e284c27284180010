# The commands of the README:
#   make run   - create .venv, install the pinned requirements, serve the backend on :9090 (gunicorn.conf.py)
#   make test  - install the test tools, Label Studio (its own .venv-label-studio) and, as root on Debian, Chromium
#                for the page's browser tests; run lint and every test
#   make audit - check the installed dependencies against known vulnerabilities (needs the network; not part of test)
# Everything is installed with pip (it reads this machine's local torch wheels; uv/poetry would download ~3 GB).

PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-label-studio
AUDIT_VENV := .venv-audit
PIP_AUDIT_VERSION := 2.10.1
PIP_VERSION := 25.3
LABEL_STUDIO_VERSION := 1.23.2
PORT ?= 9090
WORKERS ?= 1
THREADS ?= 16

export YOLO_OFFLINE ?= 0
export YOLO_CONFIG_DIR ?= $(CURDIR)/.cache/ultralytics

.PHONY: run dev test lint install install-test browser audit clean

# label-studio-ml 1.0.9 pins Flask 1.1.2 / Werkzeug 2.0.2 / Jinja2 3.0.3 (18 advisories). pip cannot override a
# dependency's pins from a requirements file, so it is installed in a second step with --no-deps, after
# requirements.txt has installed the current web stack and what label-studio-ml really imports. `pip check` then
# reports the stale pins; nothing else is expected from it.
$(VENV)/.runtime: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -qq pip==$(PIP_VERSION)
	$(VENV)/bin/pip install --disable-pip-version-check -qq -r requirements.txt
	$(VENV)/bin/pip install --disable-pip-version-check -qq --no-deps -r requirements-nodeps.txt
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
	PORT=$(PORT) WORKERS=$(WORKERS) THREADS=$(THREADS) $(VENV)/bin/gunicorn

dev: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/label-studio-ml start . --port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install-test browser lint
	YOLO_OFFLINE=1 $(VENV)/bin/python -m pytest

# The backend page's tests drive Debian's Chromium and its driver. As root with apt-get they are installed here;
# elsewhere this says how, and those tests fail with the same words (they are never skipped).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "The page's browser tests need Chromium: sudo apt-get install chromium chromium-driver"; fi

# make audit: pip-audit over exactly what .venv holds (runtime and test pins, and every transitive dependency).
# - pip-audit lives in its own venv (.venv-audit), pinned, so its dependencies never mix with the runtime's.
# - It audits .venv's `pip freeze --all` with --no-deps --disable-pip: the exact installed versions, pip included,
#   with no resolver run. `pip-audit -r requirements.txt` would instead resolve the unpinned transitive
#   dependencies afresh (what pip picks today, not what is installed), and `-r requirements.txt --no-deps` would
#   audit only the top-level pins and miss what they pull in. .venv's pip is pinned too (PIP_VERSION), so the
#   audit covers a fixed release of it.
# - It needs pip-audit's vulnerability service: PyPI's JSON API per release (default) or osv.dev
#   (make audit AUDIT_SERVICE=osv). --strict makes an unreachable service fail the target: without it pip-audit
#   skips every package and still prints "No known vulnerabilities found".
# - Not part of `make test`: CI has no vulnerability service, and new advisories would fail unchanged code.
# - Exit status 1 means a finding outside AUDIT_ACCEPTED: only advisories that no release fixes, each listed with
#   why it does not reach the backend in docs/security.md "Dependencies". Everything with a fixed release is fixed by the pins
#   instead. See everything with: make audit AUDIT_ACCEPTED=
AUDIT_SERVICE ?= pypi
AUDIT_ACCEPTED ?= PYSEC-2024-277 PYSEC-2026-97 PYSEC-2025-183

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
