"""End to end: annotations made in Label Studio train a new version that finds a class the base model never saw.

The base model knows only red boxes. People annotate red AND blue boxes on 20 tasks; "Start Training" sends
START_TRAINING to the backend, which queues a job on Redis; a real ``rq worker`` exports the annotations from Label
Studio, fine-tunes, evaluates and publishes a version; the backend serves it without a restart, so "Retrieve
predictions" on held-out tasks now finds blue boxes. mAP50 on the held-out tasks is printed before and after.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import MODEL_CACHE, PROJECT_ROOT, SampleImage, draw_samples
from label_studio_yolo.training.evaluate import map50_of_predictions
from label_studio_yolo.training.worker import TrainingWorker
from tests.e2e.conftest import BackendServer, LabelStudioServer, backend_server
from tests.e2e.test_label_studio_predictions import pixel_box, retrieve_predictions, stored_predictions, upload_images
from tests.support.redis_server import running_redis
from tests.support.synthetic import train_tiny_model

pytestmark = pytest.mark.e2e

WORKER_CLASS = f"{TrainingWorker.__module__}.{TrainingWorker.__name__}"
"""The rq worker class docker-compose runs."""

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.25">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
</View>"""
LABELS = {"red": "Red box", "blue": "Blue"}
TRAINING_TASKS = 30
WORKER_TIMEOUT = 600


@pytest.fixture(scope="module")
def red_only_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODEL_ROOT with ``base.pt``: a detector trained on red boxes only (it has no blue class at all)."""
    root = tmp_path_factory.mktemp("red-only-root")
    shutil.copy2(train_tiny_model(MODEL_CACHE, classes=("red",)), root / "base.pt")
    return root


@pytest.fixture(scope="module")
def training_images(tmp_path_factory: pytest.TempPathFactory) -> list[SampleImage]:
    return draw_samples(tmp_path_factory.mktemp("training-images"), "train", TRAINING_TASKS, seed=99)


def held_out_map50(server: LabelStudioServer, task_ids: dict[str, int], samples: list[SampleImage], version: str):
    """mAP50 of the predictions Label Studio stored for ``version`` on the held-out tasks, and the labels seen."""
    predictions, truths, seen = [], [], set()
    for sample in samples:
        stored = [p for p in stored_predictions(server, task_ids[sample.path.name]) if p.model_version == version]
        assert len(stored) == 1, f"{sample.path.name}: one prediction of {version} expected, got {stored}"
        regions = stored[0].result
        seen |= {r["value"]["rectanglelabels"][0] for r in regions}
        predictions.append([(r["value"]["rectanglelabels"][0], r["score"], *pixel_box(r)) for r in regions])
        truths.append([(LABELS[b.label], b.x0, b.y0, b.x1, b.y1) for b in sample.truth])
    return map50_of_predictions(predictions, truths, list(LABELS.values())), seen


def setup_version(backend: BackendServer, project_id: int) -> str:
    body = {"project": f"{project_id}.0", "schema": CONFIG}
    return str(requests.post(f"{backend.url}/setup", json=body, timeout=10).json()["model_version"])


def test_start_training_learns_a_new_class_and_serves_it_without_restart(
    label_studio: LabelStudioServer, red_only_root: Path, training_images, sample_images, tmp_path
) -> None:
    client = label_studio.client
    project = client.projects.create(title="E2E learning loop", label_config=CONFIG)
    train_ids = upload_images(label_studio, project.id, training_images)
    for sample in training_images:
        client.annotations.create(id=train_ids[sample.path.name], result=sample.annotation_result(LABELS))
    held_out_ids = {
        name: task_id
        for name, task_id in upload_images(label_studio, project.id, sample_images).items()
        if name.startswith("sample")
    }

    with running_redis() as redis_url:
        settings = {
            "MODEL_PATH": "base.pt",
            "REDIS_URL": redis_url,
            "MODEL_DIR": str(tmp_path / "versions"),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token,
            "TRAIN_EPOCHS": "60",
            "TRAIN_IMGSZ": "192",
            "TRAIN_BATCH": "4",
            "TRAIN_VAL_FRACTION": "0.2",
        }
        with backend_server(red_only_root, tmp_path, **settings) as backend:
            ml = client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)
            base_version = setup_version(backend, project.id)
            retrieve_predictions(label_studio, project.id)
            map_before, labels_before = held_out_map50(label_studio, held_out_ids, sample_images, base_version)
            assert "Blue" not in labels_before, "the base model has never seen blue boxes"

            pressed = time.monotonic()
            client.ml.train(id=ml.id)  # Label Studio posts START_TRAINING to /webhook and waits for the answer
            train_call = time.monotonic() - pressed
            status = requests.get(f"{backend.url}/training/status", params={"project": project.id}, timeout=5).json()
            jobs = status[str(project.id)]["jobs"]
            assert [job["status"] for job in jobs] == ["queued"], jobs

            rq = str(Path(sys.executable).parent / "rq")
            worker = subprocess.run(
                [rq, "worker", "--burst", "-w", WORKER_CLASS, "--url", redis_url, "training"],
                cwd=PROJECT_ROOT,
                env={**backend.env, "PATH": str(Path(sys.executable).parent)},
                capture_output=True,
                timeout=WORKER_TIMEOUT,
            )
            assert worker.returncode == 0, worker.stderr.decode()[-3000:]
            new_version = setup_version(backend, project.id)
            served = time.monotonic() - pressed
            assert new_version != base_version and new_version.startswith(f"project{project.id}-v001-")

            status = requests.get(f"{backend.url}/training/status", params={"project": project.id}, timeout=5).json()
            project_status = status[str(project.id)]
            assert project_status["current"] == new_version
            assert [job["status"] for job in project_status["jobs"]] == ["finished"], project_status["jobs"]
            progress = project_status["jobs"][0]["progress"]
            assert (progress["epoch"], progress["epochs"]) == (60, 60) and "metrics/mAP50(B)" in progress["metrics"]
            version_meta = project_status["versions"][0]
            assert version_meta["annotations"] == TRAINING_TASKS
            assert version_meta["plot"] and Path(version_meta["plot"]).is_file()

            retrieve_predictions(label_studio, project.id)
            map_after, labels_after = held_out_map50(label_studio, held_out_ids, sample_images, new_version)

    print(
        f"\nlearning loop: {TRAINING_TASKS} annotations, held-out mAP50 {map_before:.3f} -> {map_after:.3f}, "
        f"Label Studio's train call (incl. our webhook) {train_call:.2f} s, Start Training -> new version served "
        f"{served:.1f} s, job val mAP50 {version_meta['map50']}"
    )
    assert "Blue" in labels_after
    assert map_after > map_before + 0.3
