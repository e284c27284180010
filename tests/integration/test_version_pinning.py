"""Every gunicorn worker process serves the version a person pins, through the API or the command line.

Real gunicorn with two worker processes; requests are sent concurrently on fresh connections until the log shows
that each worker rebuilt the project's model. The CLI writes to MODEL_DIR only (no web process involved), as it
would on the shared volume.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME, SampleImage
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, Published, VersionStore
from tests.e2e.conftest import BackendServer, backend_server

PROJECT = 9
OLD, NEW = "project9-v001-0badcafe", "project9-v002-0ddba11a"
WORKERS = 2
REQUESTS = 24
CLI = Path(sys.executable).parent / "label-studio-yolo"
REBUILT = f"Project {PROJECT}.1700000000: serving model version "
"""What a worker process logs when it builds project 9's model (after the served version changed)."""


@dataclass(frozen=True)
class Served:
    backend: BackendServer
    store: VersionStore

    def log_lines(self) -> list[str]:
        return self.backend.log.read_text(errors="replace").splitlines()


@pytest.fixture(scope="module")
def served(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn with 2 workers; project 9 has two versions, the newer published."""
    folder = tmp_path_factory.mktemp("pinning")
    store = VersionStore(folder / "model-versions")
    for name in (OLD, NEW):
        with store.new_version(PROJECT, name) as version:
            shutil.copy2(model_root / WEIGHTS_NAME, version / WEIGHTS_FILE)
            (version / META_FILE).write_text("{}")
    store.publish(PROJECT, NEW)
    settings = {"MODEL_DIR": str(store.root), "INFERENCE_RUNTIME": "pytorch"}
    with backend_server(model_root, folder, workers=WORKERS, **settings) as backend:
        yield Served(backend, store)


def setup_versions(url: str) -> set[str]:
    """The versions concurrent /setup calls (spread over the worker processes) report."""
    body = {"project": f"{PROJECT}.1700000000", "schema": BOXES_CONFIG}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{url}/setup", json=body, timeout=60), range(REQUESTS)))
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    return {answer.json()["model_version"] for answer in answers}


def rebuilt_since(served: Served, line: int) -> list[str]:
    """The versions worker processes built project 9's model with, since ``line`` of the log."""
    return [entry.split(REBUILT)[1].strip() for entry in served.log_lines()[line:] if REBUILT in entry]


def served_by_every_worker(served: Served, since: int) -> set[str]:
    """What /setup reports, asked until each worker process has rebuilt project 9's model since line ``since``."""
    reported: set[str] = set()
    for _ in range(5):
        reported |= setup_versions(served.backend.url)
        if len(rebuilt_since(served, since)) >= WORKERS:
            break
    rebuilt = rebuilt_since(served, since)
    assert len(rebuilt) == WORKERS, f"each worker process switched once: {rebuilt}"
    return reported | set(rebuilt)


def predict_versions(url: str, sample: SampleImage) -> set[str]:
    """The versions concurrent /predict calls report, in the answer and in each prediction."""
    task = {"id": 1, "data": {"image": sample.data_uri()}}
    body = {"tasks": [task], "project": f"{PROJECT}.1700000000", "label_config": BOXES_CONFIG}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{url}/predict", json=body, timeout=60), range(REQUESTS)))
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    answered = [answer.json() for answer in answers]
    return {version for a in answered for version in (a["model_version"], a["results"][0]["model_version"])}


def cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CLI), "versions", *args, "--project", str(PROJECT)]
    return subprocess.run(command, env=served.backend.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_a_version_pinned_through_one_request_is_served_by_every_worker(
    served: Served, sample_images: list[SampleImage]
) -> None:
    url = served.backend.url
    assert setup_versions(url) == {NEW}, "the published version is served first"

    mark = len(served.log_lines())
    answer = requests.post(f"{url}/versions/pin", json={"project": PROJECT, "version": OLD}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert served_by_every_worker(served, mark) == {OLD}
    assert predict_versions(url, sample_images[0]) == {OLD}
    assert requests.get(f"{url}/versions", timeout=10).json()["pinned"] == {str(PROJECT): OLD}

    mark = len(served.log_lines())
    answer = requests.post(f"{url}/versions/unpin", json={"project": PROJECT}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert served_by_every_worker(served, mark) == {NEW}, "unpin serves the newest version training published"


def test_the_command_lines_pin_is_served_by_the_running_backend(served: Served) -> None:
    url = served.backend.url
    mark = len(served.log_lines())
    served.store.publish(PROJECT, NEW)
    assert served_by_every_worker(served, mark) == {NEW}

    mark = len(served.log_lines())
    pinned = cli(served, "pin", "--version", "base")
    assert pinned.returncode == 0, pinned.stderr
    base = served_by_every_worker(served, mark)
    assert len(base) == 1 and next(iter(base)).startswith("boxes-"), "every worker serves MODEL_PATH"

    refused = cli(served, "pin", "--version", "project9-v404-00000000")
    assert refused.returncode == 2
    assert f"Stored versions: {OLD}, {NEW}" in refused.stderr
    assert setup_versions(url) == base, "a refused pin changes nothing"

    pinned_out = served.store.publish(PROJECT, NEW, unless_pinned=True)
    assert pinned_out is Published.PINNED, "training does not publish over a pin"
    mark = len(served.log_lines())
    unpinned = cli(served, "unpin")
    assert unpinned.returncode == 0
    assert f"it serves {NEW}" in unpinned.stdout
    assert served_by_every_worker(served, mark) == {NEW}, "unpin serves the newest version training published"
    assert served.store.publish(PROJECT, NEW, unless_pinned=True) is Published.PUBLISHED, "and training publishes"


def test_pins_of_projects_never_trained_make_no_folder(served: Served) -> None:
    """Anyone who can reach the backend can name any project id: 3,000 such pins made 12,017 inodes before."""
    url = served.backend.url
    before = served.store.projects()

    pinned = [
        requests.post(f"{url}/versions/pin", json={"project": 4200 + n, "version": "base"}, timeout=30)
        for n in range(5)
    ]
    unpinned = requests.post(f"{url}/versions/unpin", json={"project": 4300}, timeout=30)

    assert {answer.status_code for answer in pinned} == {404}
    assert "Project 4200 has no trained versions: it serves the base weights" in pinned[0].json()["error"]
    assert unpinned.status_code == 200 and unpinned.json()["pinned"] is None
    assert served.store.projects() == before
