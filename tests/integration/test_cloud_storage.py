"""/predict on tasks whose images and videos live in a cloud storage Label Studio connects: each file is read through
Label Studio's resolve endpoint for its own task, and a file that cannot be read fails its task alone, with one log
line naming the task, the file and the cause.

Label Studio is scripted here (``tests/support/scripted_server.py``); ``tests/e2e/test_cloud_storage.py`` runs a real
one with an S3-compatible server.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from conftest import BOXES_CONFIG, SampleImage, app_client
from tests.integration.test_video_tracking import VIDEO_CONFIG
from tests.support.scripted_server import Answer, ScriptedServer, serve_script
from tests.support.synthetic_video import write_video

KEY = "ls-legacy-key-0123456789"
LABELS = {"red": "Red box", "blue": "Blue"}


def resolve_path(task_id: int, uri: str) -> str:
    return f"/tasks/{task_id}/resolve/?fileuri={base64.urlsafe_b64encode(uri.encode()).decode()}"


@pytest.fixture
def label_studio(backend_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    with serve_script() as server:
        monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
        yield server


@pytest.fixture
def client(label_studio: ScriptedServer) -> Iterator[FlaskClient]:
    with app_client() as test_client:
        yield test_client


def predict(client: FlaskClient, tasks: list[dict[str, Any]], config: str = BOXES_CONFIG) -> list[Any]:
    assert client.post("/setup", json={"project": "30.1", "schema": config}).status_code == 200
    answer = client.post("/predict", json={"tasks": tasks, "project": "30.1", "label_config": config})
    assert answer.status_code == 200, answer.json
    return list(answer.json["results"])


def labels_of(entry: Any) -> list[str]:
    """The labels of a task's regions (a task without a prediction is ``[]``)."""
    regions = entry["result"] if isinstance(entry, dict) else entry
    return sorted(region["value"]["rectanglelabels"][0] for region in regions)


def test_bucket_images_are_predicted_each_through_its_own_task_and_a_missing_one_fails_alone(
    client: FlaskClient,
    label_studio: ScriptedServer,
    sample_images: list[SampleImage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    uris = {21: "s3://imgs/a.png", 22: "gs://imgs/b.png", 23: "s3://imgs/gone.png", 24: "azure-blob://box/c.png"}
    for (task_id, uri), sample in zip(uris.items(), sample_images, strict=False):
        if task_id != 23:
            label_studio.add(resolve_path(task_id, uri), Answer(body=sample.path.read_bytes()))
    tasks = [{"id": task_id, "data": {"image": uri}} for task_id, uri in uris.items()]
    tasks[3]["data"]["image"] = f"http://ls-host-as-label-studio-names-itself:8080{resolve_path(24, uris[24])}"

    with caplog.at_level(logging.INFO):
        results = predict(client, tasks)

    expected = [sorted(LABELS[box.label] for box in sample.truth) for sample in sample_images[:4]]
    assert [labels_of(entry) for entry in results] == [expected[0], expected[1], [], expected[3]]
    assert (
        "Task 23: no prediction, media not loaded: Label Studio has no cloud storage that holds s3://imgs/gone.png "
        "(HTTP 404 from its resolve endpoint)"
    ) in caplog.text
    assert {auth for path, auth in label_studio.requests if "/resolve/" in path} == {f"Token {KEY}"}


def test_a_bucket_video_is_tracked_through_label_studio(
    client: FlaskClient, label_studio: ScriptedServer, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "boxes.mp4")
    uri = "s3://videos/boxes.mp4"
    label_studio.add(resolve_path(31, uri), Answer(body=video.path.read_bytes()))

    [entry] = predict(client, [{"id": 31, "data": {"video": uri}}], VIDEO_CONFIG)

    assert sorted(region["value"]["labels"][0] for region in entry["result"]) == ["Blue", "Red box"]
