"""Start a throwaway Label Studio (installed in its own virtualenv by ``make test``) for tests and benchmarks.

It runs headless on a free port with a fresh data folder, an admin with a legacy API token, and the settings that
let it talk to a backend on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from label_studio_sdk.client import LabelStudio

from tests.support.processes import free_port, running_server

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ADMIN_TOKEN = "e2e-admin-legacy-token-0123456789"
"""Legacy API token of the Label Studio admin."""

LABEL_STUDIO_START_TIMEOUT = 240.0
"""Seconds allowed for Label Studio's first start (about 25 s of migrations here; more on a busy CI machine)."""


@dataclass(frozen=True)
class LabelStudioServer:
    """A running Label Studio: its URL, admin token and SDK client."""

    url: str
    token: str
    client: LabelStudio
    log: Path


def label_studio_bin() -> Path:
    """The ``label-studio`` executable (``LABEL_STUDIO_BIN`` overrides the path)."""
    return Path(os.environ.get("LABEL_STUDIO_BIN", PROJECT_ROOT / ".venv-label-studio" / "bin" / "label-studio"))


@contextmanager
def running_label_studio(data_dir: Path) -> Iterator[LabelStudioServer]:
    """Label Studio 1.23 on a free port, with its data in ``data_dir``, until the block ends."""
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
    command = [str(label_studio_bin()), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    log = data_dir / "label-studio.log"
    with running_server(command, f"{url}/health", log, env, data_dir, LABEL_STUDIO_START_TIMEOUT):
        yield LabelStudioServer(url, ADMIN_TOKEN, LabelStudio(base_url=url, api_key=ADMIN_TOKEN), log)


def upload_files(server: LabelStudioServer, project_id: int, files: list[Path]) -> None:
    """Upload image files as tasks, one per file.

    label-studio-sdk imports JSON tasks only, so file uploads use the import endpoint directly, one file per form
    field (files under one field name collapse into one task).
    """
    import requests

    fields = {f"file{index}": (path.name, path.read_bytes()) for index, path in enumerate(files)}
    response = requests.post(
        f"{server.url}/api/projects/{project_id}/import",
        headers={"Authorization": f"Token {server.token}"},
        files=fields,
        timeout=120,
    )
    response.raise_for_status()
