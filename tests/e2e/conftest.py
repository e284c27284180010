"""A real Label Studio (its own virtualenv, started once per session) and the backend served by gunicorn.

Label Studio is installed by ``make test`` into ``.venv-label-studio`` (``LABEL_STUDIO_BIN`` overrides the path).
It runs headless on a free port with a throwaway data folder and an admin with a legacy API token.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from label_studio_sdk.client import LabelStudio

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME
from tests.support.processes import free_port, running_server

ADMIN_TOKEN = "e2e-admin-legacy-token-0123456789"
"""Legacy API token of the Label Studio admin the tests create."""

LABEL_STUDIO_START_TIMEOUT = 240.0
"""Seconds allowed for Label Studio's first start (about 25 s of migrations here; more on a busy CI machine)."""


@dataclass(frozen=True)
class LabelStudioServer:
    """A running Label Studio: its URL, admin token and SDK client."""

    url: str
    token: str
    client: LabelStudio
    log: Path


@dataclass(frozen=True)
class BackendServer:
    """The backend under gunicorn: its URL, log file and environment."""

    url: str
    log: Path
    env: dict[str, str]


def _label_studio_bin() -> Path:
    path = Path(os.environ.get("LABEL_STUDIO_BIN", PROJECT_ROOT / ".venv-label-studio" / "bin" / "label-studio"))
    if not path.exists():
        pytest.fail(f"Label Studio is not installed at {path}: run `make test`, which installs it (see README)")
    return path


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Label Studio 1.23 on a free port, started once for the whole session."""
    data_dir = tmp_path_factory.mktemp("label-studio-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": "e2e-password-123",
        "LABEL_STUDIO_USER_TOKEN": ADMIN_TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_HOST": url,
    }
    command = [str(_label_studio_bin()), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    log = data_dir / "label-studio.log"
    with running_server(command, f"{url}/health", log, env, data_dir, LABEL_STUDIO_START_TIMEOUT):
        yield LabelStudioServer(url, ADMIN_TOKEN, LabelStudio(base_url=url, api_key=ADMIN_TOKEN), log)


@contextmanager
def backend_server(model_root: Path, log_dir: Path, workers: int = 1, **settings: str) -> Iterator[BackendServer]:
    """The backend as users run it: gunicorn serving ``_wsgi:app`` with MODEL_ROOT, MODEL_PATH and ``settings``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_dir / "backend.log"
    env = {
        "MODEL_ROOT": str(model_root),
        "MODEL_PATH": WEIGHTS_NAME,
        "TORCH_THREADS": "1",
        "LOG_LEVEL": "INFO",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(PROJECT_ROOT / ".cache" / "ultralytics"),
        "MODEL_DIR": str(log_dir / "model-versions"),
        "LABEL_STUDIO_URL": "",
        "LABEL_STUDIO_API_KEY": "",
        "LOCAL_FILES_DOCUMENT_ROOT": "",
        **settings,
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "2", "_wsgi:app"]
    with running_server(command, f"{url}/health", log, env, PROJECT_ROOT, 120.0):
        _wait_until_weights_loaded(url)
        yield BackendServer(url, log, {**os.environ, **env})


def _wait_until_weights_loaded(url: str) -> None:
    """Wait for the weights the server preloads at start (a cold process needs ~3 s, Label Studio gives /setup 3 s).

    A user connects Label Studio long after starting the backend; a test connects within a second. A /setup of the
    default config waits for the preload to finish (or loads the weights itself); its answer does not matter here.
    """
    requests.post(f"{url}/setup", json={"project": "warm-up", "schema": BOXES_CONFIG}, timeout=120)


@pytest.fixture(scope="session")
def backend(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """The backend with no Label Studio settings: images come with the hostname and token sent to /setup."""
    with backend_server(model_root, tmp_path_factory.mktemp("backend")) as server:
        yield server


@pytest.fixture(scope="session")
def personal_access_token(label_studio: LabelStudioServer) -> str:
    """A personal access token (JWT) of the admin; Label Studio allows one valid token per user."""
    client = label_studio.client
    client.jwt_settings.update(api_token_ttl_days=30, api_tokens_enabled=True, legacy_api_tokens_enabled=True)
    return str(client.tokens.create().token)
