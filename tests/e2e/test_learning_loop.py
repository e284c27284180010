"""End to end: photos annotated in Label Studio train a version that learns two new labels and keeps the old one.

The base model was pretrained on people only (:mod:`tests.support.photos`); the project maps its ``person`` to
``Person`` and adds ``Cup`` and ``Cat``. People annotate 20 composed photos; "Start Training" sends START_TRAINING
to the backend, which queues a job on Redis; a real ``rq worker``, started as docs/training.md says, exports the
annotations from Label Studio, fine-tunes with every training setting at its default but the image size, lets the
gate judge each label and publishes; the backend serves the version without a restart, so "Retrieve predictions" on
held-out tasks finds cups and cats and still finds people. Per-label AP50 on the held-out tasks is printed before
and after.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import BackendServer, LabelStudioServer, backend_server
from tests.e2e.test_label_studio_predictions import retrieve_predictions
from tests.support.documented import documented, no_new_runs_folder, running_as_user, user_env
from tests.support.label_studio import PROJECT_ROOT
from tests.support.photo_project import CONFIG, LABELS, annotation_result, project_scenes, stored_scores, upload_scenes
from tests.support.photos import PEOPLE_IMGSZ, PEOPLE_MODEL, SCENE_SIZE
from tests.support.redis_server import running_redis

pytestmark = pytest.mark.e2e

WORKER_COMMAND = "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url $REDIS_URL training"
"""How docs/training.md starts a worker, in the shell that holds the backend's settings."""

TRAINING_TASKS = 28
HELD_OUT_TASKS = 16
WORKER_TIMEOUT = 600

OLD_LABEL_TOLERANCE = 0.1
"""How much Person may lose on the held-out tasks: about one of their ~16 people (the in-process learning tests hold
it to 0.05 on twice as many)."""

NEW_LABELS_AP50 = 0.1
"""What the new labels reach at least (from 0) on average, from the predictions Label Studio stored. They are cut at
the config's model_score_threshold (0.25), on 16 held-out tasks, so AP50 here is lower and far noisier than over all
confidences on 40 (tests/training/test_learning_on_photos.py holds each label there): the base model's people score
0.95 there and 0.75 here. Which tasks the job keeps for val follows Label Studio's task ids (a hash of each), so it
changes with what the session made before this project: measured Cup 0.70 / Cat 0.34 alone, Cup 0.195 / Cat 0.48 as
the 22nd project of the suite, Cup 0.58 / Cat 0.00 on a clean clone's CI. One label may miss here; both may not."""


def setup_version(backend: BackendServer, project_id: int) -> str:
    body = {"project": f"{project_id}.0", "schema": CONFIG}
    return str(requests.post(f"{backend.url}/setup", json=body, timeout=10).json()["model_version"])


def backend_settings(backend: BackendServer) -> dict[str, str]:
    """The settings the backend was started with (the worker needs the same), without the test process's others."""
    names = ("MODEL_ROOT", "MODEL_PATH", "MODEL_DIR", "TORCH_THREADS", "REDIS_URL", "LABEL_STUDIO_URL")
    names += ("LABEL_STUDIO_API_KEY", "TRAIN_IMGSZ", "TRAIN_VAL_FRACTION", "MEDIA_ALLOWED_HOSTS")
    return {name: backend.env[name] for name in names}


def wait_for_job_end(backend: BackendServer, project_id: int) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while time.monotonic() < deadline:
        status = requests.get(f"{backend.url}/training/status", params={"project": project_id}, timeout=5).json()
        if status[str(project_id)]["jobs"][0]["status"] in ("finished", "failed"):
            return
        time.sleep(1)
    raise AssertionError(f"the training job did not end within {WORKER_TIMEOUT} s")


def test_start_training_learns_new_labels_keeps_the_old_one_and_serves_it_without_restart(
    label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    client = label_studio.client
    scenes = project_scenes(tmp_path / "scenes", TRAINING_TASKS, HELD_OUT_TASKS, SCENE_SIZE)
    (tmp_path / "models").mkdir()
    shutil.copy2(PEOPLE_MODEL, tmp_path / "models" / "base.pt")
    project = client.projects.create(title="E2E learning loop", label_config=CONFIG)
    train_ids = upload_scenes(label_studio, project.id, scenes["train"])
    for scene in scenes["train"]:
        client.annotations.create(id=train_ids[scene.path.name], result=annotation_result(scene))
    held_out_ids = upload_scenes(label_studio, project.id, scenes["held-out"])

    with running_redis() as redis_url:
        settings = {
            "MODEL_PATH": "base.pt",
            "REDIS_URL": redis_url,
            "MODEL_DIR": str(tmp_path / "versions"),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token,
            "TRAIN_IMGSZ": str(PEOPLE_IMGSZ),  # the photos' size
            # 12 val tasks of 28 (16 train): with the default 5 of 20, val held 3 people, and one person missed
            # refuses a version by design (docs/training.md, the gate). Every other setting at its default.
            "TRAIN_VAL_FRACTION": "0.4",
        }
        with backend_server(tmp_path / "models", tmp_path, **settings) as backend:
            ml = client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)
            base_version = setup_version(backend, project.id)
            retrieve_predictions(label_studio, project.id)
            before = stored_scores(label_studio, held_out_ids, scenes["held-out"], base_version)

            pressed = time.monotonic()
            client.ml.train(id=ml.id)  # Label Studio posts START_TRAINING to /webhook and waits for the answer
            train_call = time.monotonic() - pressed
            status = requests.get(f"{backend.url}/training/status", params={"project": project.id}, timeout=5).json()
            assert [job["status"] for job in status[str(project.id)]["jobs"]] == ["queued"]

            worker_env = user_env(tmp_path / "home", Path(sys.executable).parent, **backend_settings(backend))
            worker_log_file = tmp_path / "worker.log"
            with (
                no_new_runs_folder(PROJECT_ROOT),
                running_as_user(documented(WORKER_COMMAND), PROJECT_ROOT, worker_env, worker_log_file),
            ):
                wait_for_job_end(backend, project.id)
            worker_log = worker_log_file.read_text()
            new_version = setup_version(backend, project.id)
            served = time.monotonic() - pressed
            assert new_version != base_version and new_version.startswith(f"project{project.id}-v001-"), worker_log

            status = requests.get(f"{backend.url}/training/status", params={"project": project.id}, timeout=5).json()
            project_status = status[str(project.id)]
            assert project_status["current"] == new_version
            [job] = project_status["jobs"]
            assert job["status"] == "finished" and job["progress"]["stage"] == "published", job
            assert job["result"]["gate"]["labels"]["Person"]["verdict"] in ("kept", "better"), job["result"]["gate"]
            [version_meta] = project_status["versions"]
            assert version_meta["annotations"] == TRAINING_TASKS
            assert version_meta["plot"] and Path(version_meta["plot"]).is_file()
            assert f"published: {job['result']['gate']['reason']}" in worker_log, "the worker logs the decision"
            assert "Person" in worker_log and "Training progress" in worker_log, "and the per-label scores, stages"
            assert client.ml.list_model_versions(id=ml.id).versions == [new_version], "Label Studio's version list"

            retrieve_predictions(label_studio, project.id)
            after = stored_scores(label_studio, held_out_ids, scenes["held-out"], new_version)

    print(
        f"\nlearning loop: {TRAINING_TASKS} annotations, held-out AP50 "
        + ", ".join(f"{label} {before[label].value:.3f} -> {after[label].value:.3f}" for label in LABELS.values())
        + f"; Label Studio's train call (incl. our webhook) {train_call:.2f} s, Start Training -> new version served "
        f"{served:.1f} s, timings {version_meta['timings']}"
    )
    assert before["Cup"].value == before["Cat"].value == 0.0, "the base model never saw a cup or a cat"
    assert (after["Cup"].value + after["Cat"].value) / 2 >= NEW_LABELS_AP50, "the new labels are learned"
    assert after["Person"].value >= before["Person"].value - OLD_LABEL_TOLERANCE, "the old label is kept"
