"""End to end: the documented commands that need Label Studio, run exactly as written (``tests/support/documented.py``):
the README's ``make run`` with Label Studio's URL and key, the README's bulk block through the installed console
script, and docs/bulk.md's ``docker compose run`` line with compose's environment. Each predicts a small uploaded
project and stores one correct prediction per task.

(The curl commands of docs/security.md run in ``test_label_studio_auth.py``, the worker command in
``test_learning_loop.py``; which test runs which command: ``tests/test_documented_commands.py``.)
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import requests

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME, SampleImage
from label_studio_yolo.cli import EXIT_OK
from label_studio_yolo.inference.weights import file_version
from tests.e2e.conftest import LabelStudioServer
from tests.e2e.test_bulk_predict import BulkProject, predictions_per_task
from tests.e2e.test_label_studio_predictions import assert_prediction_matches, retrieve_predictions, upload_images
from tests.support.container import compose_env, compose_run_command, image_env
from tests.support.documented import (
    block_containing,
    documented,
    fill_in,
    no_new_runs_folder,
    run_as_user,
    serving_as_user,
    user_env,
)
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


README_RUN = "LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=... make run"
README_BULK = ".venv/bin/label-studio-yolo predict --url http://localhost:8080 --project 3"
DOCKER_BULK = "docker compose run --rm backend python -m label_studio_yolo predict --project 3"


@pytest.fixture
def small_project(label_studio: LabelStudioServer, sample_images: list[SampleImage], request) -> BulkProject:
    """Three uploaded images, nobody annotated."""
    project = label_studio.client.projects.create(title=f"Bulk {request.node.name}"[:50], label_config=BOXES_CONFIG)
    ids = upload_images(label_studio, project.id, sample_images[:3])
    return BulkProject(project.id, {ids[sample.path.name]: sample for sample in sample_images[:3]}, frozenset())


def assert_stored_once_each(server: LabelStudioServer, project: BulkProject, version: str) -> None:
    stored = predictions_per_task(server, project.id)
    assert sorted(stored) == sorted(project.samples)
    for task_id, predictions in stored.items():
        assert len(predictions) == 1, predictions
        assert_prediction_matches(predictions[0], project.samples[task_id], version)


def test_the_readme_s_make_run_with_label_studio_s_url_and_key_serves_retrieve_predictions(
    label_studio: LabelStudioServer,
    personal_access_token: str,
    small_project: BulkProject,
    model_root: Path,
    tmp_path: Path,
) -> None:
    """The README's way to connect: Label Studio's URL and a personal access token, MEDIA_ALLOWED_HOSTS left at its
    default. Label Studio on this machine's loopback is reached because it is configured (a /setup alone could not
    name it)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = fill_in(
        documented(README_RUN),
        {"http://localhost:8080": label_studio.url, "=...": f"={shlex.quote(personal_access_token)}"},
    )
    settings = {"MODEL_ROOT": str(model_root), "MODEL_PATH": WEIGHTS_NAME, "MODEL_DIR": str(tmp_path / "versions")}
    env = user_env(tmp_path / "home", PORT=str(port), TORCH_THREADS="1", **settings)
    env.pop("MEDIA_ALLOWED_HOSTS", None)
    log = tmp_path / "backend.log"

    with serving_as_user(start, f"{url}/health", PROJECT_ROOT, env, log):
        probe = {"project": "probe", "schema": BOXES_CONFIG}  # waits for the preloaded weights (Label Studio gives 3 s)
        version = requests.post(f"{url}/setup", json=probe, timeout=120).json()["model_version"]
        label_studio.client.ml.create(project=small_project.id, url=url, title="YOLO", is_interactive=False)
        retrieve_predictions(label_studio, small_project.id)

    assert_stored_once_each(label_studio, small_project, version)
    assert personal_access_token not in log.read_text()


def test_the_readme_s_bulk_commands_predict_and_upload_every_task_as_typed(
    label_studio: LabelStudioServer,
    personal_access_token: str,
    small_project: BulkProject,
    model_root: Path,
    tmp_path: Path,
) -> None:
    """The README's block, run by bash through the installed console script, from a folder whose .venv is this one.

    ultralytics took a process whose name ends in ``yolo`` with ``predict`` among its arguments for its own command
    line: every task failed and a ``runs/`` folder appeared."""
    script = fill_in(
        block_containing(README_BULK),
        {
            "LABEL_STUDIO_API_KEY=...": f"LABEL_STUDIO_API_KEY={shlex.quote(personal_access_token)}",
            "http://localhost:8080": label_studio.url,
            "--project 3": f"--project {small_project.id}",
        },
    )
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    settings = {"MODEL_ROOT": str(model_root), "MODEL_PATH": WEIGHTS_NAME, "MODEL_DIR": str(tmp_path / "versions")}

    with no_new_runs_folder(folder, PROJECT_ROOT):
        done = run_as_user(script, folder, user_env(tmp_path / "home", TORCH_THREADS="1", **settings), timeout=600)

    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    version = file_version(model_root / WEIGHTS_NAME)
    entries = json.loads((folder / "predictions.json").read_text())
    assert sorted(entry["task"] for entry in entries) == sorted(small_project.samples)
    assert {entry["model_version"] for entry in entries} == {version}
    assert done.stdout.count("predicted: 3 (0 with no region)") == 2, done.stdout
    assert_stored_once_each(label_studio, small_project, version)


def test_the_docker_bulk_command_predicts_with_compose_s_settings(
    label_studio: LabelStudioServer, small_project: BulkProject, model_root: Path, tmp_path: Path
) -> None:
    """docs/bulk.md's ``docker compose run`` line: its command, in the image's working folder, with the Dockerfile's
    and compose's environment as the user's shell fills it in (Label Studio's URL and key, MODEL_PATH)."""
    service, command = compose_run_command(documented(DOCKER_BULK))
    shell = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "MODEL_PATH": WEIGHTS_NAME,
    }
    folders = {"/models": model_root, "/data": tmp_path / "data", "/tmp/ultralytics": tmp_path / "ultralytics"}
    env = image_env(compose_env(service, shell), folders)

    with no_new_runs_folder(PROJECT_ROOT):
        done = run_as_user(fill_in(command, {"--project 3": f"--project {small_project.id}"}), PROJECT_ROOT, env, 600)

    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert "predicted: 3 (0 with no region), uploaded" in done.stdout
    assert_stored_once_each(label_studio, small_project, file_version(model_root / WEIGHTS_NAME))
