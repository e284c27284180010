"""Several gunicorn worker processes all switch to a newly published version, without a restart."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import BOXES_CONFIG, WEIGHTS_NAME
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, VersionStore
from tests.e2e.conftest import backend_server

pytestmark = pytest.mark.e2e

REQUESTS = 30


def setup_versions(url: str) -> set[str]:
    """The versions that many concurrent /setup calls (spread over the worker processes) report."""
    body = {"project": "9.1700000000", "schema": BOXES_CONFIG}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{url}/setup", json=body, timeout=30), range(REQUESTS)))
    assert all(answer.status_code == 200 for answer in answers)
    return {answer.json()["model_version"] for answer in answers}


def test_every_worker_process_serves_the_published_version(model_root: Path, tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "versions")
    with backend_server(model_root, tmp_path, workers=3, MODEL_DIR=str(store.root)) as backend:
        before = setup_versions(backend.url)
        assert len(before) == 1 and next(iter(before)).startswith("boxes-")

        with store.new_version(9, "project9-v001-0badcafe") as folder:
            shutil.copy2(model_root / WEIGHTS_NAME, folder / WEIGHTS_FILE)
            (folder / META_FILE).write_text("{}")
        store.publish(9, "project9-v001-0badcafe")

        assert setup_versions(backend.url) == {"project9-v001-0badcafe"}
        pids = {
            line.split("pid: ")[1].strip() for line in backend.log.read_text().splitlines() if "Booting worker" in line
        }
        assert len(pids) == 3, "three worker processes ran"
