"""End to end: a real Label Studio 1.23 asks this backend for predictions and stores them.

The user's path: create a project, upload images, connect the backend, press "Retrieve predictions". Label
Studio then calls /health, /setup and /predict, fetches nothing itself, and stores what the backend answers. We
assert what Label Studio stored: one prediction per task, with the project's labels, boxes on the objects, and the
version /setup reported, and no duplicates when predictions are retrieved again.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from conftest import BOXES_CONFIG, SampleImage
from tests.e2e.conftest import BackendServer, LabelStudioServer, backend_server
from tests.support.label_studio import upload_files

pytestmark = pytest.mark.e2e

LABELS = {"red": "Red box", "blue": "Blue"}


def upload_images(server: LabelStudioServer, project_id: int, samples: list[SampleImage]) -> dict[str, int]:
    """Upload image files as tasks; returns task id by file name."""
    upload_files(server, project_id, [sample.path for sample in samples])
    tasks = server.client.tasks.list(project=project_id, fields="all")
    return {task.data["image"].rsplit("-", 1)[-1]: task.id for task in tasks}


def retrieve_predictions(server: LabelStudioServer, project_id: int) -> None:
    """What the Data Manager's "Retrieve predictions" action does for all tasks."""
    server.client.actions.create(
        id="retrieve_tasks_predictions", project=project_id, selected_items={"all": True, "excluded": []}
    )


def stored_predictions(server: LabelStudioServer, task_id: int) -> list[Any]:
    return list(server.client.predictions.list(task=task_id))


def pixel_box(region: dict[str, Any]) -> tuple[float, float, float, float]:
    value, width, height = region["value"], region["original_width"], region["original_height"]
    x0, y0 = value["x"] / 100 * width, value["y"] / 100 * height
    return x0, y0, x0 + value["width"] / 100 * width, y0 + value["height"] / 100 * height


def assert_prediction_matches(prediction: Any, sample: SampleImage, version: str) -> None:
    """The stored prediction has the backend's version and one correctly labelled box per object."""
    assert prediction.model_version == version
    regions = prediction.result
    assert len(regions) == len(sample.truth), regions
    for truth in sample.truth:
        best = max(regions, key=lambda region: truth.iou(*pixel_box(region)))
        assert truth.iou(*pixel_box(best)) >= 0.7
        assert best["value"]["rectanglelabels"] == [LABELS[truth.label]]
        assert (best["from_name"], best["to_name"]) == ("label", "image")
    assert 0.4 <= prediction.score <= 1.0


def backend_version(backend: BackendServer) -> str:
    response = requests.post(f"{backend.url}/setup", json={"project": "probe", "schema": BOXES_CONFIG}, timeout=10)
    return str(response.json()["model_version"])


def test_retrieve_predictions_stores_correct_boxes_once(
    label_studio: LabelStudioServer, backend: BackendServer, sample_images: list[SampleImage]
) -> None:
    client = label_studio.client
    project = client.projects.create(title="E2E boxes", label_config=BOXES_CONFIG)
    task_ids = upload_images(label_studio, project.id, sample_images)
    broken = client.tasks.create(project=project.id, data={"image": "http://127.0.0.1:9/unreachable.png"})

    ml = client.ml.create(project=project.id, url=backend.url, title="YOLO", is_interactive=False)
    assert ml.state in (None, "CO", "CONNECTED"), ml
    version = backend_version(backend)

    retrieve_predictions(label_studio, project.id)

    for sample in sample_images:
        predictions = stored_predictions(label_studio, task_ids[sample.path.name])
        assert len(predictions) == 1, f"{sample.path.name}: {predictions}"
        assert_prediction_matches(predictions[0], sample, version)
    assert stored_predictions(label_studio, broken.id) == [], "a task whose image fails gets no prediction"
    assert "unreachable.png" in backend.log.read_text(), "the backend log names the task image that failed"

    retrieve_predictions(label_studio, project.id)
    for task_id in task_ids.values():
        assert len(stored_predictions(label_studio, task_id)) == 1, "retrieving again must not duplicate predictions"


def test_images_are_fetched_with_a_personal_access_token(
    label_studio: LabelStudioServer, personal_access_token: str, model_root, tmp_path, sample_images: list[SampleImage]
) -> None:
    """LABEL_STUDIO_URL + a personal access token: the backend refreshes it into access tokens through the SDK."""
    client = label_studio.client
    project = client.projects.create(title="E2E personal access token", label_config=BOXES_CONFIG)
    samples = sample_images[:2]
    task_ids = upload_images(label_studio, project.id, samples)

    settings = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": personal_access_token}
    with backend_server(model_root, tmp_path, **settings) as backend:
        client.ml.create(project=project.id, url=backend.url, title="YOLO with PAT", is_interactive=False)
        retrieve_predictions(label_studio, project.id)
        version = backend_version(backend)

    for sample in samples:
        predictions = stored_predictions(label_studio, task_ids[sample.path.name])
        assert len(predictions) == 1, predictions
        assert_prediction_matches(predictions[0], sample, version)
    assert "POST /api/token/refresh/" in label_studio.log.read_text(), "the PAT was exchanged for an access token"
