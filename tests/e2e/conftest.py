"""A real Label Studio (its own virtualenv, started once per session) and the backend served by gunicorn.

Label Studio is installed by ``make test`` into ``.venv-label-studio`` (``LABEL_STUDIO_BIN`` overrides the path);
:mod:`tests.support.label_studio` starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME
from tests.support.label_studio import LabelStudioServer, label_studio_bin, running_label_studio
from tests.support.processes import free_port, running_server

TEST_MEDIA_HOSTS = "public,127.0.0.1"
"""MEDIA_ALLOWED_HOSTS of the tests' backends: their image servers stand in for public hosts on 127.0.0.1 (the
trust-boundary tests put a refused host on 127.0.0.2)."""


@dataclass(frozen=True)
class BackendServer:
    """The backend under gunicorn: its URL, log file, environment and gunicorn's master process."""

    url: str
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Label Studio 1.23 on a free port, started once for the whole session."""
    if not label_studio_bin().exists():
        pytest.fail(f"Label Studio is not installed at {label_studio_bin()}: run `make test`, which installs it")
    with running_label_studio(tmp_path_factory.mktemp("label-studio-data")) as server:
        yield server


@contextmanager
def backend_server(
    model_root: Path,
    log_dir: Path,
    workers: int = 1,
    threads: int = 2,
    auth: tuple[str, str] | None = None,
    warm_up: bool = True,
    **settings: str,
) -> Iterator[BackendServer]:
    """The backend as users run it: gunicorn, configured by ``gunicorn.conf.py``, with MODEL_ROOT, MODEL_PATH and
    ``settings``; ``threads`` is THREADS, the request threads of each of the ``workers`` processes.

    ``auth`` (user, password) switches on Basic auth and is sent with the start-up probes; ``warm_up`` waits for the
    preloaded weights (see :func:`_wait_until_weights_loaded`).
    """
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
        "MEDIA_ALLOWED_HOSTS": TEST_MEDIA_HOSTS,
        **({"BASIC_AUTH_USER": auth[0], "BASIC_AUTH_PASS": auth[1]} if auth else {}),
        **settings,
    }
    # As `make run` and the image run it: gunicorn reads ./gunicorn.conf.py (the ASGI front of _wsgi:asgi_app, whose
    # pool has THREADS threads); only the address, on loopback here, and the process count are given.
    env["THREADS"] = str(threads)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    credentials = f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@" if auth else ""  # requests sends them
    health = f"http://{credentials}127.0.0.1:{port}/health"
    with running_server(command, health, log, env, PROJECT_ROOT, 120.0) as process:
        if warm_up:
            _wait_until_weights_loaded(url, auth)
        yield BackendServer(url, log, {**os.environ, **env}, process)


def _wait_until_weights_loaded(url: str, auth: tuple[str, str] | None = None) -> None:
    """Wait for the weights the server preloads at start (a cold process needs ~3 s, Label Studio gives /setup 3 s).

    A user connects Label Studio long after starting the backend; a test connects within a second. A /setup of the
    default config waits for the preload to finish (or loads the weights itself); its answer does not matter here.
    """
    requests.post(f"{url}/setup", json={"project": "warm-up", "schema": BOXES_CONFIG}, auth=auth, timeout=120)


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
