"""Fixed-shape OpenVINO networks: the same detections as the dynamic network, compiled for the first shapes met, at
most OPENVINO_STATIC_SHAPES of them per weight file, shared by single tasks and lanes; the dynamic network is
compiled only for a shape beyond them, and a shape that fails to compile runs dynamic. Real exports, real compiles."""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import ultralytics

from conftest import SampleImage
from label_studio_yolo.inference.openvino_shapes import ShapeNetworks, ShapeRequests
from label_studio_yolo.inference.outputs import Detection, run_model
from label_studio_yolo.inference.runtimes import Runtime, compiled_property
from label_studio_yolo.inference.weights import LoadedWeights, load_weights_file
from label_studio_yolo.settings import OPENVINO

PHOTOS = [Path(ultralytics.__file__).parent / "assets" / name for name in ("bus.jpg", "zidane.jpg")]
"""Real photos shipped inside ultralytics: 810x1080 and 1280x720, letterboxed to 480x640 and 640x384 at 640 px."""


def load(tiny_weights: Path, folder: Path, **runtime: object) -> LoadedWeights:
    """The tiny detector on OpenVINO, from its own copy of the file (the weights cache holds one model per file)."""
    folder.mkdir()
    shutil.copy2(tiny_weights, folder / "boxes.pt")
    return load_weights_file(folder / "boxes.pt", Runtime(OPENVINO, threads=2, **runtime))  # type: ignore[arg-type]


def networks_of(loaded: LoadedWeights) -> ShapeNetworks:
    requests = loaded.model.predictor.model.backend.ov_compiled_model  # type: ignore[union-attr]
    assert isinstance(requests, ShapeRequests)
    return requests.networks


def boxes(detections: list[Detection]) -> list[tuple[str, float, float, float, float, float]]:
    return [(d.class_name, d.score, d.x0, d.y0, d.x1, d.y1) for d in detections]


def test_a_fixed_shape_network_gives_exactly_the_dynamic_networks_detections(
    tiny_weights: Path, tmp_path: Path, sample_images: list[SampleImage]
) -> None:
    fixed = load(tiny_weights, tmp_path / "fixed")
    dynamic = load(tiny_weights, tmp_path / "dynamic", static_shapes=0)
    images = [(cv2.imread(str(photo)), 640) for photo in PHOTOS] + [
        (cv2.imread(str(s.path)), None) for s in sample_images
    ]

    for image, imgsz in images:
        first = run_model(fixed, image, conf=0.05, imgsz=imgsz).detections
        second = run_model(fixed, image, conf=0.05, imgsz=imgsz).detections
        expected = run_model(dynamic, image, conf=0.05, imgsz=imgsz).detections
        assert boxes(second) == boxes(first) == boxes(expected), "bit for bit"
        assert expected, "the comparison needs detections"

    assert networks_of(dynamic).static_shapes == []
    assert networks_of(fixed).static_shapes == [(1, 3, 640, 480), (1, 3, 384, 640)], "photos first, then the limit"


def test_the_first_shapes_get_networks_and_the_dynamic_one_is_compiled_only_beyond_them(
    tiny_weights: Path, tmp_path: Path
) -> None:
    """The dynamic network keeps buffers for the largest shape it ran: a project whose photos come in few shapes never
    pays for it."""
    loaded = load(tiny_weights, tmp_path / "w", static_shapes=1)
    networks = networks_of(loaded)
    portrait, landscape = (cv2.imread(str(photo)) for photo in PHOTOS)

    for _ in range(3):
        run_model(loaded, portrait, conf=0.25, imgsz=640)
    assert networks.static_shapes == [(1, 3, 640, 480)]
    assert not networks.has_dynamic, "no shape beyond the limit yet"

    for image in (landscape, landscape, portrait):
        run_model(loaded, image, conf=0.25, imgsz=640)
    assert networks.static_shapes == [(1, 3, 640, 480)], "the limit holds"
    assert networks.has_dynamic, "the second shape runs on the dynamic network"


def test_a_shape_that_fails_to_compile_runs_dynamic_and_is_logged_once(
    tiny_weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = load(tiny_weights, tmp_path / "w")
    networks = networks_of(loaded)
    real_compile = networks._compile_model

    def refuse_portraits(model: object) -> object:
        shape = model.input().get_partial_shape()  # type: ignore[attr-defined]
        if shape.is_static and list(shape.to_shape()) == [1, 3, 640, 480]:
            raise RuntimeError("Exception from src/inference/src/cpp/core.cpp: out of memory")
        return real_compile(model)

    networks._compile_model = refuse_portraits
    portrait = cv2.imread(str(PHOTOS[0]))
    expected = boxes(run_model(load(tiny_weights, tmp_path / "d", static_shapes=0), portrait, 0.1, 640).detections)
    with caplog.at_level(logging.WARNING):
        answers = [boxes(run_model(loaded, portrait, conf=0.1, imgsz=640).detections) for _ in range(4)]

    assert answers == [expected] * 4
    assert networks.static_shapes == []
    warnings = [r.getMessage() for r in caplog.records if "could not compile" in r.getMessage()]
    assert len(warnings) == 1, "logged once, not on every task"
    assert "input shape (1, 3, 640, 480)" in warnings[0] and "out of memory" in warnings[0]


def test_lanes_share_one_family_and_predict_two_shapes_at_once(tiny_weights: Path, tmp_path: Path) -> None:
    """Two lanes on photos of two shapes run two fixed-shape networks at once, their threads unpinned (OpenVINO pins
    stream 0 of every network to the same core)."""
    loaded = load(tiny_weights, tmp_path / "w", lanes=2)
    copies = loaded.lane_copies(2, threads=1)
    photos = [cv2.imread(str(photo)) for photo in PHOTOS]
    expected = [boxes(run_model(loaded, photo, conf=0.1, imgsz=640).detections) for photo in photos]

    def lane(number: int) -> list[list[tuple[str, float, float, float, float, float]]]:
        photo = photos[number]  # each lane its own shape, as a batch of two cameras would run
        return [boxes(run_model(copies[number], photo, conf=0.1, imgsz=640, threads=1).detections) for _ in range(4)]

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lane, range(2)))

    for number, lane_answers in enumerate(answers):
        for answer in lane_answers:
            assert [box[0] for box in answer] == [box[0] for box in expected[number]]
            assert np.allclose([box[1:] for box in answer], [box[1:] for box in expected[number]], atol=0.01)
    family = {id(networks_of(copy)) for copy in copies}
    assert len(family) == 1, "one family of networks for both lanes"
    assert sorted(networks_of(copies[0]).static_shapes) == [(1, 3, 384, 640), (1, 3, 640, 480)]
    assert not networks_of(copies[0]).has_dynamic, "two shapes, both fixed"
    assert compiled_property(copies[0].model, "ENABLE_CPU_PINNING") == "False"
    assert compiled_property(copies[0].model, "NUM_STREAMS") == "2"


def test_callers_meeting_a_shape_together_compile_it_once(tiny_weights: Path, tmp_path: Path) -> None:
    loaded = load(tiny_weights, tmp_path / "w", lanes=4)
    copies = loaded.lane_copies(4, threads=1)
    networks = networks_of(copies[0])
    compiled: list[tuple[int, ...]] = []
    real_compile = networks._compile_model
    networks._compile_model = lambda model: compiled.append(tuple(model.input().shape)) or real_compile(model)
    photo = cv2.imread(str(PHOTOS[1]))
    start = threading.Barrier(4)

    def lane(copy: LoadedWeights) -> None:
        for _ in range(3):
            start.wait()
            run_model(copy, photo, conf=0.25, imgsz=640, threads=1)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lane, copies))

    assert compiled == [(1, 3, 384, 640)]
