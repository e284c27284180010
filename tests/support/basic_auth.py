"""The backend under gunicorn with HTTP Basic auth on, and what a client sends for it.

``tests.e2e.conftest.backend_server`` polls ``/health`` without credentials, which such a backend refuses; this
one sends them (as ``user:password@`` in the URL, which ``requests`` turns into the header).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME
from tests.support.processes import free_port, running_server

USER = "label-studio"
PASSWORD = "correct horse: battery staple"
"""A password with a space and a colon: Basic auth splits user and password at the first colon only."""


def basic(user: bytes | str, password: bytes | str) -> str:
    """The ``Authorization`` header value for ``user`` and ``password`` (str in UTF-8, bytes as they are)."""
    raw = b":".join(part.encode() if isinstance(part, str) else part for part in (user, password))
    return "Basic " + base64.b64encode(raw).decode()


@contextmanager
def backend_with_basic_auth(
    model_root: Path, log_dir: Path, warm_up: bool = True, **settings: str
) -> Iterator[tuple[str, Path]]:
    """gunicorn serving ``_wsgi:app`` with BASIC_AUTH_USER/PASS = USER/PASSWORD; yields its URL and log file.

    ``warm_up`` waits for the weights as ``backend_server`` does (Label Studio gives ``/setup`` 3 s).
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
        "BASIC_AUTH_USER": USER,
        "BASIC_AUTH_PASS": PASSWORD,
        **settings,
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2", "_wsgi:app"]
    health = f"http://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/health"
    with running_server(command, health, log, env, PROJECT_ROOT, 120.0):
        if warm_up:
            body = {"project": "warm-up", "schema": BOXES_CONFIG}
            requests.post(f"{url}/setup", json=body, auth=(USER, PASSWORD), timeout=120)
        yield url, log
