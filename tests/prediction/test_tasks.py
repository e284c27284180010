"""Lanes: a batch is predicted several tasks at a time, each lane on its own copy of the model, with the same
predictions, in task order, failures kept to their task, and a stop that leaves nothing running."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import label_studio_yolo.prediction.tasks as predictor_module
from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.inference.outputs import run_model
from label_studio_yolo.inference.runtimes import Runtime, compiled_property, runtime_for
from label_studio_yolo.inference.weights import load_weights_file
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.prediction.tasks import TaskPredictor
from label_studio_yolo.settings import OPENVINO, BackendSettings
from tests.support.image_server import serve_files
from tests.support.waiting import eventually


def predictor_with(lanes: int) -> TaskPredictor:
    return build_project_predictor(BOXES_CONFIG, project_id=1, settings=BackendSettings(inference_lanes=lanes))


def tasks_for(images: list[SampleImage], count: int) -> list[dict[str, Any]]:
    return [{"id": n, "data": {"image": images[n % len(images)].data_uri()}} for n in range(count)]


def rounded(prediction: Any) -> list[tuple[str, float, float, float, float]]:
    """Each region's label and box, to 0.1% of the image (one vs two threads may differ in the last float bits)."""
    return [
        (r["value"]["rectanglelabels"][0], *(round(r["value"][k], 1) for k in ("x", "y", "width", "height")))
        for r in prediction["result"]
    ]


def test_lanes_give_the_predictions_of_one_task_at_a_time_in_task_order(
    backend_env: Path, sample_images: list[SampleImage]
) -> None:
    tasks = tasks_for(sample_images, 9)

    alone = predictor_with(1).predict(tasks)
    in_lanes = list(predictor_with(2).attempt_all(tasks))

    assert [outcome.task_id for outcome in in_lanes] == list(range(9))
    assert [rounded(outcome.prediction) for outcome in in_lanes] == [rounded(p) for p in alone]
    assert all(rounded(p) for p in alone), "every sample has its two boxes"


def test_each_lane_runs_its_own_model_copy_with_its_share_of_the_threads(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int | None]] = []

    def recording_run_model(weights: Any, image: Any, **options: Any) -> Any:
        calls.append((threading.current_thread().name, id(weights), options.get("threads")))
        return run_model(weights, image, **options)

    monkeypatch.setattr(predictor_module, "run_model", recording_run_model)
    predictor = predictor_with(2)
    primary = predictor.controls[0].weights

    predictor.predict(tasks_for(sample_images, 6))
    predictor.predict(tasks_for(sample_images, 1))

    copies = {id(copy) for copy in primary.lane_copies(2, threads=1)}
    batch, single = calls[:6], calls[6]
    assert len(copies) == 2 and id(primary) not in copies
    assert {model for _, model, _ in batch} == copies, "both lane copies predicted"
    assert len({thread for thread, _, _ in batch}) == 2, "from two threads at once"
    assert {threads for _, _, threads in batch} == {1}, "TORCH_THREADS=2 shared out: one thread per lane"
    assert single[1:] == (id(primary), 2), "a single task runs on the model itself with every thread"


def test_a_broken_task_fails_alone_in_its_lane(backend_env: Path, sample_images: list[SampleImage]) -> None:
    tasks = tasks_for(sample_images, 6)
    tasks[2]["data"]["image"] = "data:image/png;base64,bm90IGFuIGltYWdl"

    outcomes = list(predictor_with(2).attempt_all(tasks))

    assert outcomes[2].prediction is None and "not a readable image" in (outcomes[2].error or "")
    assert all(outcome.prediction and outcome.prediction["result"] for i, outcome in enumerate(outcomes) if i != 2)


def test_a_lane_held_up_by_one_task_leaves_every_other_task_to_the_other_lane(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lanes take the next task as they finish one: images differ in size and speed, and a fixed share per lane
    (tasks 0, 2, 4, ... for the first) would leave half the batch waiting behind one slow image."""
    predicted: list[int] = []

    def counting_run_model(weights: Any, image: Any, **options: Any) -> Any:
        predicted.append(1)
        return run_model(weights, image, **options)

    monkeypatch.setattr(predictor_module, "run_model", counting_run_model)
    with serve_files() as storage:
        urls = [storage.add(f"/images/{n}.png", sample_images[n % 6].path.read_bytes()) for n in range(12)]
        slow_image = storage.hold("/images/0.png")
        tasks = [{"id": n, "data": {"image": url}} for n, url in enumerate(urls)]
        with ThreadPoolExecutor(1) as consumer:
            outcomes = consumer.submit(lambda: list(predictor_with(2).attempt_all(tasks)))
            others_done = eventually(lambda: len(predicted) == 11)
            slow_image.set()
            results = outcomes.result(timeout=60)

    assert others_done, f"only {len(predicted)} of the 11 other tasks were predicted while task 0 waited"
    assert [outcome.task_id for outcome in results] == list(range(12))
    assert all(outcome.prediction and outcome.prediction["result"] for outcome in results)


def test_closing_the_stream_early_stops_every_lane(backend_env: Path, sample_images: list[SampleImage]) -> None:
    with serve_files() as storage:
        urls = [storage.add(f"/{n}.png", sample_images[n % 6].path.read_bytes()) for n in range(40)]
        outcomes = predictor_with(2).attempt_all([{"id": n, "data": {"image": url}} for n, url in enumerate(urls)])

        assert next(outcomes).prediction
        outcomes.close()  # returns once each lane has finished the task it was on
        requested = len(storage.requests)

    assert requested < 40, "the remaining images were not all fetched"
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("lane")], "no lane left running"


@pytest.mark.parametrize(
    ("environment", "lanes"),
    [({"TORCH_THREADS": "2"}, 2), ({"TORCH_THREADS": "1"}, 1), ({"TORCH_THREADS": "8", "INFERENCE_LANES": "4"}, 4)],
)
def test_lanes_default_to_two_on_a_cpu_with_two_threads(
    environment: dict[str, str], lanes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERENCE_LANES", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert runtime_for(BackendSettings()).lanes == lanes
    assert runtime_for(BackendSettings(device="cuda")).lanes == (4 if "INFERENCE_LANES" in environment else 1)


def test_openvino_lane_copies_share_one_network_with_a_stream_and_a_thread_per_lane(
    tiny_weights: Path, tmp_path: Path, sample_images: list[SampleImage]
) -> None:
    weights = tmp_path / "boxes.pt"
    shutil.copy2(tiny_weights, weights)

    loaded = load_weights_file(weights, Runtime(OPENVINO, threads=2, lanes=2))
    copies = loaded.lane_copies(2, threads=1)

    assert compiled_property(loaded.model, "INFERENCE_NUM_THREADS") == "2"
    networks = {id(copy.model.predictor.model.backend.ov_compiled_model.networks) for copy in copies}
    assert len(networks) == 1, "the weights are held once for both lanes"
    assert compiled_property(copies[0].model, "NUM_STREAMS") == "2"
    assert compiled_property(copies[0].model, "INFERENCE_NUM_THREADS") == "2", "one thread per stream"
    assert len(list(tmp_path.glob("*_openvino_model"))) == 1, "one export"
    image = np.asarray(Image.open(sample_images[0].path).convert("RGB"))[:, :, ::-1].copy()
    expected = run_model(loaded, image, conf=0.5).detections
    with ThreadPoolExecutor(2) as pool:  # both lanes at once, as a batch runs them
        outputs = list(pool.map(lambda copy: run_model(copy, image, conf=0.5, threads=1), copies * 4))
    for output in outputs:
        assert [d.class_name for d in output.detections] == [d.class_name for d in expected]
        for got, want in zip(output.detections, expected, strict=True):
            assert abs(got.x0 - want.x0) < 0.5 and abs(got.y1 - want.y1) < 0.5
