"""End to end: a real Label Studio 1.23 with an S3 source storage on an S3-compatible server (moto, on loopback).

Label Studio writes ``s3://imgs/photos/<name>`` into its tasks and serves them through its resolve endpoint, the bytes
themselves (presign off) or a redirect to a presigned URL on the storage (presign on). "Retrieve predictions" must
store, for each bucket image, the prediction the same image gets when uploaded; the bulk command predicts a bucket
project; "Start Training" on bucket annotations publishes a version and names the task whose object was deleted; a
removed storage fails its tasks with a log line that says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import BOXES_CONFIG, PROJECT_ROOT, SampleImage
from label_studio_yolo.cli import EXIT_OK, main
from label_studio_yolo.versions import VersionStore
from tests.e2e.conftest import BackendServer, LabelStudioServer, backend_server
from tests.e2e.test_label_studio_predictions import (
    LABELS,
    assert_prediction_matches,
    backend_version,
    retrieve_predictions,
    stored_predictions,
    upload_images,
)
from tests.support.redis_server import running_redis
from tests.support.s3_server import S3Server, running_s3

pytestmark = pytest.mark.e2e

BUCKET = "imgs"
WORKER_CLASS = "label_studio_yolo.training.worker.TrainingWorker"
TRAINING = {"TRAIN_EPOCHS": "2", "TRAIN_IMGSZ": "192", "TRAIN_PUBLISH_POLICY": "always", "INFERENCE_RUNTIME": "pytorch"}
"""A short job that publishes what it trains: the plumbing is the question here, not what it learns."""


@dataclass(frozen=True)
class BucketProject:
    """A project whose tasks come from an S3 storage: its id, the storage's id and each task's image."""

    id: int
    storage_id: int
    samples: dict[int, SampleImage]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, sample_images: list[SampleImage]) -> Iterator[S3Server]:
    """A bucket with three sample images under ``photos/`` and all six under ``train/``."""
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        server.client.create_bucket(Bucket=BUCKET)
        for prefix, samples in (("photos", sample_images[:3]), ("train", sample_images)):
            for sample in samples:
                key = f"{prefix}/{sample.path.name}"
                server.client.put_object(Bucket=BUCKET, Key=key, Body=sample.path.read_bytes(), ContentType="image/png")
        yield server


def bucket_project(
    server: LabelStudioServer, s3: S3Server, samples: list[SampleImage], prefix: str, presign: bool, title: str
) -> BucketProject:
    """A project with an S3 storage of ``prefix`` (presigned URLs or proxied bytes), synced: one task per object."""
    client = server.client
    project = client.projects.create(title=title, label_config=BOXES_CONFIG)
    settings = s3.storage_settings(BUCKET, prefix)
    storage = client.import_storage.s3.create(
        project=project.id, presign=presign, presign_ttl=1, regex_filter=r".*\.png", **settings
    )
    client.import_storage.s3.sync(id=storage.id)
    by_name = {sample.path.name: sample for sample in samples}
    deadline = time.monotonic() + 60
    while len(tasks := list(client.tasks.list(project=project.id, resolve_uri=False))) < len(samples):
        assert time.monotonic() < deadline, f"Label Studio synced {len(tasks)} of {len(samples)} objects"
        time.sleep(0.5)
    assert {task.data["image"] for task in tasks} == {f"s3://{BUCKET}/{prefix}/{name}" for name in by_name}
    return BucketProject(
        project.id, storage.id, {task.id: by_name[task.data["image"].rsplit("/", 1)[1]] for task in tasks}
    )


def regions_without_ids(prediction: Any) -> list[dict[str, Any]]:
    return sorted(
        ({key: value for key, value in region.items() if key != "id"} for region in prediction.result),
        key=lambda region: (region["value"]["x"], region["value"]["y"]),
    )


@pytest.fixture(scope="module")
def uploaded_predictions(
    label_studio: LabelStudioServer, backend: BackendServer, sample_images: list[SampleImage]
) -> dict[str, list[dict[str, Any]]]:
    """What "Retrieve predictions" stores for the three images uploaded to a project, by file name."""
    client = label_studio.client
    project = client.projects.create(title="E2E uploads to compare", label_config=BOXES_CONFIG)
    ids = upload_images(label_studio, project.id, sample_images[:3])
    client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)
    retrieve_predictions(label_studio, project.id)
    return {name: regions_without_ids(stored_predictions(label_studio, task)[0]) for name, task in ids.items()}


@pytest.mark.parametrize("presign", [True, False], ids=["presign-on", "presign-off"])
def test_retrieve_predictions_on_bucket_images_stores_what_the_same_uploads_get(
    label_studio: LabelStudioServer,
    backend: BackendServer,
    s3: S3Server,
    sample_images: list[SampleImage],
    uploaded_predictions: dict[str, list[dict[str, Any]]],
    presign: bool,
) -> None:
    project = bucket_project(label_studio, s3, sample_images[:3], "photos", presign, f"E2E S3 presign {presign}")
    label_studio.client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)

    retrieve_predictions(label_studio, project.id)

    version = backend_version(backend)
    for task_id, sample in project.samples.items():
        [prediction] = stored_predictions(label_studio, task_id)
        assert_prediction_matches(prediction, sample, version)
        assert regions_without_ids(prediction) == uploaded_predictions[sample.path.name]


def test_a_removed_storage_fails_its_tasks_with_a_line_that_says_so(
    label_studio: LabelStudioServer, backend: BackendServer, s3: S3Server, sample_images: list[SampleImage]
) -> None:
    project = bucket_project(label_studio, s3, sample_images[:3], "photos", True, "E2E S3 storage removed")
    label_studio.client.import_storage.s3.delete(id=project.storage_id)
    task_id = min(project.samples)
    task = label_studio.client.tasks.get(id=task_id).model_dump(mode="json")
    setup = {"project": f"{project.id}.1", "schema": BOXES_CONFIG, "hostname": label_studio.url}
    requests.post(f"{backend.url}/setup", json={**setup, "access_token": label_studio.token}, timeout=30)

    answer = requests.post(f"{backend.url}/predict", json={"tasks": [task], "project": setup["project"]}, timeout=60)

    assert answer.json()["results"] == [[]]
    uri = f"s3://{BUCKET}/photos/{project.samples[task_id].path.name}"
    assert (
        f"Task {task_id}: no prediction, media not loaded: Label Studio has no cloud storage that holds {uri} (HTTP "
        "404 from its resolve endpoint)"
    ) in backend.log.read_text()


def test_the_bulk_command_predicts_a_bucket_project(
    label_studio: LabelStudioServer, s3: S3Server, sample_images: list[SampleImage], backend_env: Path
) -> None:
    project = bucket_project(label_studio, s3, sample_images[:3], "photos", True, "E2E S3 bulk")
    args = ["--url", label_studio.url, "--api-key", label_studio.token, "--project", str(project.id), "--no-progress"]

    assert main(["predict", *args]) == EXIT_OK

    for task_id, sample in project.samples.items():
        [prediction] = stored_predictions(label_studio, task_id)
        assert_prediction_matches(prediction, sample, prediction.model_version)


def test_start_training_on_bucket_annotations_publishes_and_names_the_task_whose_object_is_gone(
    label_studio: LabelStudioServer, s3: S3Server, sample_images: list[SampleImage], model_root: Path, tmp_path: Path
) -> None:
    client = label_studio.client
    project = bucket_project(label_studio, s3, sample_images, "train", True, "E2E S3 training")
    for task_id, sample in project.samples.items():
        client.annotations.create(id=task_id, result=sample.annotation_result(LABELS))
    gone_task = max(project.samples)
    gone = f"s3://{BUCKET}/train/{project.samples[gone_task].path.name}"
    s3.client.delete_object(Bucket=BUCKET, Key=gone.split(f"{BUCKET}/", 1)[1])

    with running_redis() as redis_url:
        credentials = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token}
        settings = {"REDIS_URL": redis_url, "MODEL_DIR": str(tmp_path / "versions"), **credentials, **TRAINING}
        with backend_server(model_root, tmp_path, **settings) as backend:
            ml = client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)
            client.ml.train(id=ml.id)
            rq = str(Path(sys.executable).parent / "rq")
            worker = subprocess.run(
                [rq, "worker", "--burst", "-w", WORKER_CLASS, "--url", redis_url, "training"],
                cwd=PROJECT_ROOT,
                env={**os.environ, **backend.env},
                capture_output=True,
                timeout=600,
            )
            log = worker.stdout.decode(errors="replace") + worker.stderr.decode(errors="replace")

    store = VersionStore(tmp_path / "versions")
    version = store.current(project.id)
    assert worker.returncode == 0 and version is not None, log[-3000:]
    [(skipped, reason)] = version.meta["skipped_tasks"].items()
    assert skipped == str(gone_task) and reason.startswith("The storage "), reason  # moto answers 403, S3 403 or 404
    assert f"presigned URL for {gone} twice" in reason or f"has no object {gone}" in reason, reason
    assert len(version.meta["train_tasks"]) + len(version.meta["val_tasks"]) == len(project.samples) - 1
    assert f"Task {gone_task} left out of training: {reason[:200]}" in log  # the log line is cut at 500
