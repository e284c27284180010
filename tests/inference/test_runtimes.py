"""Inference runtimes: OpenVINO gives PyTorch's boxes, is exported once beside the weights, uses the threads it is
given, and falls back to PyTorch (with the reason logged) when it cannot be exported.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import ultralytics
from PIL import Image

from conftest import PROJECT_ROOT, SampleImage
from label_studio_yolo.inference.outputs import Detection, run_model
from label_studio_yolo.inference.runtimes import Runtime, compiled_property, openvino_folder, runtime_for
from label_studio_yolo.inference.threads import on_torch_thread
from label_studio_yolo.inference.weights import file_version, load_weights_file
from label_studio_yolo.settings import OPENVINO, PYTORCH

PHOTOS = [Path(ultralytics.__file__).parent / "assets" / name for name in ("bus.jpg", "zidane.jpg")]
"""Real photos shipped inside ultralytics."""


@pytest.fixture
def weights_copy(tiny_weights: Path, tmp_path: Path) -> Path:
    """A private copy of the detection model, so each test starts without an export."""
    path = tmp_path / "models" / "boxes.pt"
    path.parent.mkdir()
    shutil.copy2(tiny_weights, path)
    return path


def box_iou(a: Detection, b: Detection) -> float:
    width = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    height = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = width * height
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union else 0.0


def has_twin(detection: Detection, others: list[Detection]) -> bool:
    """``others`` holds the same object: same class, IoU >= 0.98, score within 0.02."""
    return any(
        other.class_name == detection.class_name
        and box_iou(detection, other) >= 0.98
        and abs(detection.score - other.score) <= 0.02
        for other in others
    )


def test_openvino_gives_the_boxes_of_pytorch_on_real_photos(weights_copy: Path) -> None:
    """The test model knows coloured boxes only; on real photos it finds dozens of weak, overlapping objects. Those
    are a hard comparison: where two overlap with nearly equal scores, float differences decide which one
    non-maximum suppression keeps. At least 95% of them must have a twin; on images it knows, all must (below)."""
    pytorch = load_weights_file(weights_copy)
    openvino = load_weights_file(weights_copy, Runtime(OPENVINO, threads=2))
    assert (pytorch.runtime, openvino.runtime) == (PYTORCH, OPENVINO)
    for photo in PHOTOS:
        image = Image.open(photo).convert("RGB")
        expected = [d for d in run_model(pytorch, image, conf=0.05, imgsz=640).detections if d.score >= 0.1]
        actual = run_model(openvino, image, conf=0.05, imgsz=640).detections
        assert len(expected) >= 10, "the comparison needs detections"
        twins = sum(has_twin(detection, actual) for detection in expected)
        assert twins >= 0.95 * len(expected), f"{photo.name}: {twins} of {len(expected)} boxes match"


def test_openvino_finds_the_drawn_boxes_as_pytorch_does(weights_copy: Path, sample_images: list[SampleImage]) -> None:
    pytorch = load_weights_file(weights_copy)
    openvino = load_weights_file(weights_copy, Runtime(OPENVINO, threads=2))
    for sample in sample_images:
        image = Image.open(sample.path).convert("RGB")
        expected = run_model(pytorch, image, conf=0.4).detections
        actual = run_model(openvino, image, conf=0.4).detections
        assert len(expected) == len(actual) == len(sample.truth)
        assert all(has_twin(detection, actual) for detection in expected)


def test_openvino_uses_the_threads_and_precision_it_is_given(weights_copy: Path) -> None:
    loaded = load_weights_file(weights_copy, Runtime(OPENVINO, threads=1))
    assert compiled_property(loaded.model, "INFERENCE_NUM_THREADS") == "1"
    assert "float32" in compiled_property(loaded.model, "INFERENCE_PRECISION_HINT")
    faster = load_weights_file(weights_copy, Runtime(OPENVINO, threads=2, precision="bf16"))
    assert faster.model is not loaded.model, "each precision is its own compiled network"
    assert compiled_property(faster.model, "INFERENCE_NUM_THREADS") == "2"


def test_torch_keeps_one_thread_beside_openvino_and_all_of_them_on_its_own(
    weights_copy: Path, sample_images: list[SampleImage]
) -> None:
    """On OpenVINO torch only pre- and post-processes; a second torch thread fought OpenVINO's for the cores."""
    image = cv2.imread(str(sample_images[0].path))
    run_model(load_weights_file(weights_copy, Runtime(OPENVINO, threads=2)), image, conf=0.25, threads=2)
    assert torch.get_num_threads() == 1
    run_model(load_weights_file(weights_copy, Runtime(PYTORCH, threads=2)), image, conf=0.25, threads=2)
    assert on_torch_thread(torch.get_num_threads) == 2, "PyTorch runs on the torch thread (test below)"


def test_pytorch_predicts_on_one_thread_whichever_thread_asks(
    weights_copy: Path, sample_images: list[SampleImage]
) -> None:
    """OpenMP gives every thread that starts parallel work its own helper threads; once a process has more helpers
    than cores they sleep between parallel regions. A server that loaded in one thread and predicted from whichever
    gunicorn thread took the request served single tasks at half the raw loop's speed."""
    loaded = load_weights_file(weights_copy, Runtime(PYTORCH, threads=2))
    lane_copy = loaded.lane_copies(2, threads=1)[0]
    predicted_on: dict[str, list[int]] = {"model": [], "lane copy": []}
    loaded.model.add_callback("on_predict_start", lambda _: predicted_on["model"].append(threading.get_ident()))
    lane_copy.model.add_callback("on_predict_start", lambda _: predicted_on["lane copy"].append(threading.get_ident()))
    image = cv2.imread(str(sample_images[0].path))
    expected = run_model(loaded, image, conf=0.25, threads=2).detections

    def ask(_: int) -> tuple[int, list[Detection], list[Detection]]:
        on_model = run_model(loaded, image, conf=0.25, threads=2).detections
        return threading.get_ident(), on_model, run_model(lane_copy, image, conf=0.25, threads=1).detections

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(8)))

    callers = {caller for caller, _, _ in answers} | {threading.get_ident()}
    assert len(set(predicted_on["model"])) == 1, "every multi-threaded prediction on one thread"
    assert not callers & set(predicted_on["model"]), "not on any caller's thread"
    assert set(predicted_on["lane copy"]) <= callers, "a one-thread lane predicts on its own thread"
    for _, on_model, on_lane in answers:
        assert [d.class_name for d in on_model] == [d.class_name for d in expected] == [d.class_name for d in on_lane]


def test_work_on_the_torch_thread_returns_its_result_or_raises_its_error() -> None:
    assert on_torch_thread(lambda: on_torch_thread(threading.get_ident)) == on_torch_thread(threading.get_ident)
    with pytest.raises(ZeroDivisionError):
        on_torch_thread(lambda: 1 / 0)


def test_the_export_is_made_once_beside_the_weights_and_reused_by_the_next_process(weights_copy: Path) -> None:
    load_weights_file(weights_copy, Runtime(OPENVINO, threads=1))
    folder = openvino_folder(weights_copy, file_version(weights_copy))
    assert folder.parent == weights_copy.parent and any(folder.glob("*.xml"))
    before = {path: path.stat().st_mtime_ns for path in folder.iterdir()}

    script = (
        "import logging, sys; logging.basicConfig(level=logging.INFO)\n"
        "from pathlib import Path\n"
        "from label_studio_yolo.inference.runtimes import Runtime\n"
        "from label_studio_yolo.inference.weights import load_weights_file\n"
        "print(load_weights_file(Path(sys.argv[1]), Runtime('openvino', threads=1)).runtime)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(weights_copy)], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == OPENVINO, result.stderr
    assert "Exporting" not in result.stderr, "the second process loads the export of the first"
    assert {path: path.stat().st_mtime_ns for path in folder.iterdir()} == before


def test_a_failed_export_falls_back_to_pytorch_and_logs_why(weights_copy: Path, caplog) -> None:
    blocker = openvino_folder(weights_copy, file_version(weights_copy))
    blocker.write_text("a stray file where the export belongs")

    with caplog.at_level(logging.WARNING):
        loaded = load_weights_file(weights_copy, Runtime(OPENVINO, threads=1))

    assert loaded.runtime == PYTORCH
    assert f"Weights {weights_copy} run on PyTorch: no OpenVINO export" in caplog.text
    image = Image.open(PHOTOS[0]).convert("RGB")
    assert run_model(loaded, image, conf=0.05, imgsz=640).detections, "PyTorch still predicts"
    leftovers = [path for path in weights_copy.parent.glob(".*_openvino_model.*") if path.is_dir()]
    assert leftovers == [], "no half-written export is left behind"


def test_a_first_start_whose_export_and_pytorch_fail_fails_predictions_at_once_with_the_reasons(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Predictions wait for a first start's export; with nothing left to predict with they must not wait 80 s each
    for a model that never comes."""
    from label_studio_yolo.errors import WeightsError

    openvino_folder(weights_copy, file_version(weights_copy)).write_text("a stray file where the export belongs")

    def no_pytorch(*args: object) -> None:
        raise RuntimeError("out of memory")  # the one failure no real file here provokes

    monkeypatch.setattr("label_studio_yolo.inference.weights._pytorch_model", no_pytorch)
    loaded = load_weights_file(weights_copy, Runtime(OPENVINO, threads=1, background_export=True))
    for thread in [thread for thread in threading.enumerate() if thread.name == "openvino-export"]:
        thread.join(120)

    with pytest.raises(WeightsError, match=r"could not be loaded: no OpenVINO export .+ no PyTorch model \(out of"):
        run_model(loaded, np.zeros((64, 64, 3), np.uint8), conf=0.25)


def test_openvino_is_not_used_off_the_cpu() -> None:
    assert Runtime(OPENVINO, device="cpu").wants_openvino
    assert not Runtime(OPENVINO, device="cuda:0").wants_openvino
    assert not Runtime(PYTORCH).wants_openvino


@pytest.mark.parametrize("name", ["boxes-seg.pt", "boxes-pose.pt", "boxes-obb.pt", "colours-cls.pt"])
def test_openvino_gives_pytorchs_outlines_keypoints_rotated_boxes_and_classes(
    name: str, task_models: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    path = tmp_path / name
    shutil.copy2(task_models / name, path)
    pytorch = load_weights_file(path)
    openvino = load_weights_file(path, Runtime(OPENVINO, threads=2))
    for sample in sample_images[:3]:
        image = Image.open(sample.path).convert("RGB")
        expected, actual = run_model(pytorch, image, conf=0.3), run_model(openvino, image, conf=0.3)
        assert [c.class_name for c in expected.classes] == [c.class_name for c in actual.classes]
        for mine, theirs in zip(expected.classes, actual.classes, strict=True):
            assert abs(mine.score - theirs.score) <= 0.02
        assert len(expected.detections) == len(actual.detections)
        for detection in expected.detections:
            twin = max(actual.detections, key=lambda other: box_iou(detection, other))
            assert has_twin(detection, [twin])
            for mine, theirs in zip(detection.keypoints, twin.keypoints, strict=True):
                assert abs(mine.x - theirs.x) <= 1 and abs(mine.y - theirs.y) <= 1
            if detection.rotated:
                assert twin.rotated is not None and abs(detection.rotated.angle - twin.rotated.angle) <= 0.02
            assert abs(len(detection.polygon) - len(twin.polygon)) <= max(2, len(detection.polygon) // 10)
        if expected.masks is not None:
            assert actual.masks is not None
            for index in range(len(expected.detections)):
                mine, theirs = expected.masks.full_size(index), actual.masks.full_size(index)
                assert (mine & theirs).sum() / max(1, (mine | theirs).sum()) >= 0.95


def test_setup_does_not_wait_for_an_export_and_predictions_wait_for_it_without_a_pytorch_model_beside(
    weights_copy: Path, backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Label Studio gives /setup 3 s, an export takes longer: /setup answers from the checkpoint at once, and
    predictions wait for the export instead of loading a PyTorch model beside it (a server's first start held both
    and an export process, 3.2-4.2 GB with a YOLOv8s)."""
    from conftest import BOXES_CONFIG, app_client
    from label_studio_yolo.inference import runtimes
    from label_studio_yolo.inference.weights import load_weights
    from label_studio_yolo.settings import BackendSettings

    release = threading.Event()
    real_export = runtimes._export_into

    def held_export(*args: object) -> None:
        assert release.wait(60), "the test releases the export"
        real_export(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(runtimes, "_export_into", held_export)
    monkeypatch.setenv("MODEL_ROOT", str(weights_copy.parent))
    monkeypatch.setenv("MODEL_PATH", weights_copy.name)
    task = {"id": 1, "data": {"image": sample_images[0].data_uri()}}
    body = {"project": "9.1", "label_config": BOXES_CONFIG, "tasks": [task]}
    with app_client() as client, ThreadPoolExecutor(1) as pool:
        setup = client.post("/setup", json={"project": "9.1", "schema": BOXES_CONFIG})
        assert setup.status_code == 200 and setup.json["model_version"].startswith("boxes-"), "answered while held"
        loaded = load_weights(weights_copy.parent, weights_copy.name, runtime_for(BackendSettings()))  # the server's
        assert loaded.model is None, "no model is loaded while the export is made"
        waiting = pool.submit(predict_in_own_client, body)
        assert not waiting.done() and loaded.model is None
        release.set()
        on_openvino = waiting.result(120)

    assert loaded.runtime == OPENVINO
    pytorch = load_weights_file(weights_copy)  # a second file entry: the cache keys the runtime
    image = Image.open(sample_images[0].path).convert("RGB")
    expected = run_model(pytorch, image, conf=BackendSettings().model_score_threshold).detections
    labels = {"red": "Red box", "blue": "Blue"}  # BOXES_CONFIG's mapping of the tiny model's classes
    assert expected, "the comparison needs detections"
    assert [r["value"]["rectanglelabels"][0] for r in on_openvino["result"]] == [labels[d.class_name] for d in expected]


def predict_in_own_client(body: dict[str, object]) -> dict[str, object]:
    """The first task's prediction from a client of its own (a Flask test client serves one thread)."""
    from conftest import app_client

    with app_client() as client:
        return client.post("/predict", json=body).json["results"][0]  # type: ignore[no-any-return,index]


def test_a_background_export_leaves_the_servers_log_level_alone(weights_copy: Path) -> None:
    """OpenVINO's converter sets the root logger to ERROR while it runs: in the server's process that silenced every
    log line of the export's 5-10 s (and the export held the GIL, so /health lagged). A server exports in a child."""
    from label_studio_yolo.inference.runtimes import ensure_openvino_export

    root = logging.getLogger()
    levels_seen: set[int] = set()
    export = threading.Thread(
        target=ensure_openvino_export, args=(weights_copy, file_version(weights_copy), 160, True), name="test-export"
    )
    export.start()
    while export.is_alive():
        levels_seen.add(root.level)
        export.join(0.01)

    assert levels_seen == {root.level}
    folder = openvino_folder(weights_copy, file_version(weights_copy))
    assert (folder / "metadata.yaml").is_file()
    model = load_weights_file(weights_copy, Runtime(OPENVINO, threads=1)).model
    assert model.predict(np.zeros((160, 160, 3), np.uint8), imgsz=160, verbose=False)  # the export loads and runs
