"""HTTP tests of the backend's Flask app with a real YOLO model: /health, /setup, /predict.

The model is the tiny red/blue box detector from ``conftest.py``; images have known boxes, so every assertion is
about what a Label Studio user would see: the right labels, boxes where the objects are, and versions that let
Label Studio skip tasks it already has predictions for.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.inference.weights import file_version
from tests.support.image_server import FileServer, serve_files

PROJECT = "7.1700000000"


@pytest.fixture
def storage() -> Iterator[FileServer]:
    with serve_files(token="legacy-key") as server:
        yield server


def setup_project(client: FlaskClient, config: str = BOXES_CONFIG, project: str = PROJECT, **extra: Any) -> Any:
    return client.post("/setup", json={"project": project, "schema": config, **extra})


def predict(client: FlaskClient, tasks: list[dict[str, Any]], config: str = BOXES_CONFIG, project: str = PROJECT):
    return client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config, "params": {}})


def pixel_box(region: dict[str, Any]) -> tuple[float, float, float, float]:
    value, width, height = region["value"], region["original_width"], region["original_height"]
    x0, y0 = value["x"] / 100 * width, value["y"] / 100 * height
    return x0, y0, x0 + value["width"] / 100 * width, y0 + value["height"] / 100 * height


def assert_matches_truth(result: list[dict[str, Any]], sample: SampleImage, labels: dict[str, str]) -> None:
    """Every ground-truth box is found once, with the mapped label and an IoU of at least 0.7."""
    assert len(result) == len(sample.truth), result
    for truth in sample.truth:
        best = max(result, key=lambda region: truth.iou(*pixel_box(region)))
        assert truth.iou(*pixel_box(best)) >= 0.7
        assert best["value"]["rectanglelabels"] == [labels[truth.label]]


def test_health_answers_up(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "UP"


def test_setup_reports_a_version_that_identifies_the_weights(client: FlaskClient, backend_env: Path) -> None:
    response = setup_project(client)
    assert response.status_code == 200
    version = response.json["model_version"]
    assert version == file_version(backend_env / "boxes.pt")
    assert version.startswith("boxes-") and len(version) == len("boxes-") + 8


def test_predict_returns_the_known_boxes_with_project_labels(client: FlaskClient, sample_images: list[SampleImage]):
    version = setup_project(client).json["model_version"]
    tasks = [{"id": i, "data": {"image": sample.data_uri()}} for i, sample in enumerate(sample_images)]
    body = predict(client, tasks).json
    assert body["model_version"] == version
    assert len(body["results"]) == len(tasks)
    for entry, sample in zip(body["results"], sample_images, strict=True):
        assert entry["model_version"] == version
        assert_matches_truth(entry["result"], sample, {"red": "Red box", "blue": "Blue"})
        for region in entry["result"]:
            assert region["from_name"] == "label" and region["to_name"] == "image"
            assert region["type"] == "rectanglelabels"
            assert (region["original_width"], region["original_height"]) == (192, 144)
            assert 0.4 <= region["score"] <= 1.0
        assert entry["score"] == pytest.approx(sum(r["score"] for r in entry["result"]) / 2, abs=1e-3)


def test_labels_no_one_claims_are_dropped(client: FlaskClient, sample_images: list[SampleImage]) -> None:
    config = BOXES_CONFIG.replace('<Label value="Blue"/>', "")
    sample = sample_images[0]
    result = predict(client, [{"id": 1, "data": {"image": sample.data_uri()}}], config=config).json["results"][0]
    assert [region["value"]["rectanglelabels"] for region in result["result"]] == [["Red box"]]


def test_threshold_comes_from_the_tag_else_the_environment(client, sample_images, monkeypatch) -> None:
    task = [{"id": 1, "data": {"image": sample_images[0].data_uri()}}]
    strict = BOXES_CONFIG.replace('model_score_threshold="0.4"', 'model_score_threshold="0.999"')
    assert predict(client, task, config=strict).json["results"][0]["result"] == []

    no_attribute = BOXES_CONFIG.replace(' model_score_threshold="0.4"', "")
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.999")
    assert predict(client, task, config=no_attribute, project="8.1").json["results"][0]["result"] == []
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.3")
    assert len(predict(client, task, config=no_attribute, project="8.1").json["results"][0]["result"]) == 2


def test_thresholds_below_ultralytics_default_return_low_score_regions(client, sample_images) -> None:
    loose = BOXES_CONFIG.replace('model_score_threshold="0.4"', 'model_score_threshold="0.01"')
    tasks = [{"id": i, "data": {"image": s.data_uri()}} for i, s in enumerate(sample_images)]
    scores = [r["score"] for entry in predict(client, tasks, config=loose).json["results"] for r in entry["result"]]
    assert min(scores) < 0.25, "ultralytics' default conf=0.25 must not cut a lower model_score_threshold"


def test_images_are_fetched_from_label_studio_with_the_setup_token(client, storage, sample_images) -> None:
    path = "/data/upload/7/abc123-sample0.png"
    storage.add(path, sample_images[0].path.read_bytes())
    setup_project(client, hostname=storage.url, access_token="legacy-key")
    entry = predict(client, [{"id": 1, "data": {"image": path}}]).json["results"][0]
    assert_matches_truth(entry["result"], sample_images[0], {"red": "Red box", "blue": "Blue"})
    assert storage.requests == [(path, "Token legacy-key")]


def test_a_broken_image_fails_only_its_own_task(client, storage, sample_images, caplog) -> None:
    setup_project(client, hostname=storage.url, access_token="legacy-key")
    storage.add("/data/upload/7/good.png", sample_images[1].path.read_bytes())
    storage.add("/data/upload/7/broken.png", b"\x89PNG\r\n\x1a\nnot really a png")
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/7/good.png"}},
        {"id": 2, "data": {"image": "/data/upload/7/broken.png"}},
        {"id": 3, "data": {"image": "/data/upload/7/missing.png"}},
        {"id": 4, "data": {"text": "no image key"}},
        {"id": 5, "data": {"image": sample_images[2].data_uri()}},
    ]
    with caplog.at_level(logging.ERROR):
        response = predict(client, tasks)
    assert response.status_code == 200
    results = response.json["results"]
    assert [bool(entry) for entry in results] == [True, False, False, False, True]
    assert_matches_truth(results[0]["result"], sample_images[1], {"red": "Red box", "blue": "Blue"})
    assert_matches_truth(results[4]["result"], sample_images[2], {"red": "Red box", "blue": "Blue"})
    log = caplog.text
    assert "Task 2: no prediction" in log and "not a readable image" in log
    assert "Task 3: no prediction" in log and "404" in log
    assert "Task 4: no prediction" in log and "'image'" in log


def test_a_batch_past_its_time_budget_answers_with_what_is_predicted(
    client, sample_images, monkeypatch, caplog
) -> None:
    """Label Studio gives /predict 100 s; a batch that would take longer answers in time with the tasks it reached,
    and an empty entry (nothing stored, asked again next time) for each of the others."""
    monkeypatch.setenv("PREDICT_TIME_BUDGET", "0.001")
    tasks = [{"id": n, "data": {"image": sample_images[n % 6].data_uri()}} for n in range(12)]

    with caplog.at_level(logging.WARNING):
        results = predict(client, tasks).json["results"]

    assert len(results) == 12 and results[0] and results[0]["result"]
    assert results[-1] == [], "the batch stopped early"
    assert results == [entry for entry in results if entry] + [[]] * results.count([]), "predicted tasks come first"
    assert f"after {12 - results.count([])} of 12 tasks" in caplog.text and "label-studio-yolo predict" in caplog.text


def test_two_projects_get_their_own_labels_alternately_and_concurrently(client, sample_images) -> None:
    french = BOXES_CONFIG.replace('value="Red box" predicted_values="red"', 'value="Rouge" predicted_values="red"')
    french = french.replace('<Label value="Blue"/>', '<Label value="Bleu" predicted_values="blue"/>')
    projects = {
        "1.100": (BOXES_CONFIG, {"red": "Red box", "blue": "Blue"}),
        "2.200": (french, {"red": "Rouge", "blue": "Bleu"}),
    }
    for project, (config, _labels) in projects.items():
        assert setup_project(client, config=config, project=project).status_code == 200

    sample = sample_images[3]
    task = [{"id": 1, "data": {"image": sample.data_uri()}}]
    for project in ["1.100", "2.200", "1.100", "2.200"]:
        config, labels = projects[project]
        assert_matches_truth(
            predict(client, task, config=config, project=project).json["results"][0]["result"], sample, labels
        )

    failures: list[BaseException] = []

    def worker(project: str) -> None:
        config, labels = projects[project]
        try:
            for _ in range(3):
                with client.application.test_client() as own_client:
                    result = predict(own_client, task, config=config, project=project).json["results"][0]["result"]
                assert_matches_truth(result, sample, labels)
        except BaseException as error:  # collected and re-raised in the main thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(project,)) for project in projects for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def test_a_config_without_a_fillable_control_fails_setup_with_an_example(client) -> None:
    config = (
        '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
    )
    response = setup_project(client, config=config)
    assert response.status_code == 400
    message = response.json["error"]
    assert "<Choices name='c'>" in message
    assert '<RectangleLabels name="label" toName="image"' in message and 'predicted_values="car,truck"' in message


def test_labels_that_match_no_model_class_fail_setup_with_the_fix(client) -> None:
    config = BOXES_CONFIG.replace('predicted_values="red"', 'predicted_values="car"').replace('"Blue"', '"Person"')
    response = setup_project(client, config=config)
    assert response.status_code == 400
    assert "blue, red" in response.json["error"] and "predicted_values=" in response.json["error"]


def test_missing_weights_fail_setup_naming_the_file_and_the_fix(client, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_PATH", "no-such-model.pt")
    response = setup_project(client)
    assert response.status_code == 500
    message = response.json["error"]
    assert "no-such-model.pt" in message and "MODEL_ROOT" in message and "MODEL_PATH" in message


def test_malformed_requests_get_a_clear_400(client) -> None:
    assert client.post("/predict", data="not json", content_type="application/json").status_code == 400
    assert client.post("/predict", json={"tasks": "nope"}).status_code == 400
    assert client.post("/setup", json={"project": "1"}).status_code == 400
    assert predict(client, []).json["results"] == []


def test_events_that_do_not_train_are_accepted_quietly(client) -> None:
    for action in ("PROJECT_UPDATED", "TASKS_CREATED", "SOMETHING_NEW"):
        response = client.post("/webhook", json={"action": action, "project": {"id": 1}})
        assert response.status_code == 200
        assert response.json["status"] == "ignored"


def test_versions_lists_the_projects_trained_versions_and_errors_carry_no_traceback(client, backend_env) -> None:
    from label_studio_yolo.settings import current_settings
    from label_studio_yolo.versions import META_FILE, VersionStore

    store = VersionStore(current_settings().model_dir)
    for name in ("project7-v001", "project7-v002"):
        with store.new_version(7, name) as folder:
            (folder / META_FILE).write_text("{}")
    store.publish(7, "project7-v001")

    assert client.post("/versions", json={"project": PROJECT}).json == {
        "versions": ["project7-v001", "project7-v002"],
        "current": "project7-v001",
        "pinned": None,
    }
    assert client.post("/versions", json={"project": "8.1700000000"}).json == {
        "versions": [],
        "current": None,
        "pinned": None,
    }
    broken = client.post("/versions", data="not json", content_type="application/json")
    assert broken.status_code == 400 and "not valid JSON" in broken.json["error"]
    assert "Traceback" not in broken.get_data(as_text=True)


def test_the_app_starts_without_loading_weights(tmp_path: Path) -> None:
    """gunicorn can import the app and answer /health before any weights exist; /setup is where they load."""
    script = (
        "import _wsgi\n"
        "from label_studio_yolo.inference.weights import loaded_weight_files\n"
        "assert _wsgi.app.test_client().get('/health').status_code == 200\n"
        "assert loaded_weight_files() == []\n"
    )
    env = {**os.environ, "MODEL_ROOT": str(tmp_path), "MODEL_PATH": "not-there-yet.pt"}
    completed = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, env=env, capture_output=True)
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]


MULTI_TAG_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
  <PolygonLabels name="outline" toName="image" model_score_threshold="0.4" model_path="extra/second.pt">
    <Label value="Red shape" predicted_values="red"/>
  </PolygonLabels>
</View>"""


def test_several_tags_each_with_its_own_weights_are_filled_in_one_request(client, backend_env, sample_images):
    (backend_env / "extra").mkdir(exist_ok=True)
    shutil.copy2(backend_env / "boxes.pt", backend_env / "extra" / "second.pt")
    version = setup_project(client, config=MULTI_TAG_CONFIG, project="12.1").json["model_version"]
    assert version == f"{file_version(backend_env / 'boxes.pt')}+{file_version(backend_env / 'extra' / 'second.pt')}"

    sample = sample_images[4]
    task = [{"id": 1, "data": {"image": sample.data_uri()}}]
    entry = predict(client, task, config=MULTI_TAG_CONFIG, project="12.1").json["results"][0]
    boxes = [r for r in entry["result"] if r["from_name"] == "box"]
    outlines = [r for r in entry["result"] if r["from_name"] == "outline"]
    assert_matches_truth(boxes, sample, {"red": "Red box", "blue": "Blue"})
    assert [r["value"]["polygonlabels"] for r in outlines] == [["Red shape"]]
    red = next(box for box in sample.truth if box.label == "red")
    xs = [x / 100 * 192 for x, _ in outlines[0]["value"]["points"]]
    ys = [y / 100 * 144 for _, y in outlines[0]["value"]["points"]]
    assert red.iou(min(xs), min(ys), max(xs), max(ys)) >= 0.7


def test_a_model_path_outside_model_root_is_refused(client) -> None:
    config = MULTI_TAG_CONFIG.replace('model_path="extra/second.pt"', 'model_path="../boxes.pt"')
    response = setup_project(client, config=config, project="13.1")
    assert response.status_code == 400, "the config names it: Label Studio shows the config's error"
    assert "outside MODEL_ROOT" in response.json["error"] and '<PolygonLabels name="outline">' in response.json["error"]


def test_a_replaced_tag_weight_file_is_served_on_the_next_setup(client, backend_env) -> None:
    from ultralytics import YOLO

    (backend_env / "extra").mkdir(exist_ok=True)
    shutil.copy2(backend_env / "boxes.pt", backend_env / "extra" / "second.pt")
    first = setup_project(client, config=MULTI_TAG_CONFIG, project="14.1").json["model_version"]
    YOLO(str(backend_env / "boxes.pt")).save(str(backend_env / "extra" / "second.pt"))  # new bytes, same model
    second = setup_project(client, config=MULTI_TAG_CONFIG, project="14.1").json["model_version"]
    assert first.split("+")[0] == second.split("+")[0], "the unchanged default weights keep their version"
    assert first.split("+")[1] != second.split("+")[1] == file_version(backend_env / "extra" / "second.pt")
