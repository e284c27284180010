"""``<VideoRectangle>`` through ``/predict``: each object the tracker follows in a task's video is one region.

The video is synthetic (:mod:`tests.support.synthetic_video`): a red and a blue box move steadily over 30 frames,
so every frame's boxes are known. The model is the tiny red/blue detector of ``conftest.py``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from conftest import BOXES_CONFIG, WEIGHTS_NAME, SampleImage, app_client
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import TrackedBox
from label_studio_yolo.inference.tracking import video_suffix
from label_studio_yolo.tags.video import keyframe_sequence
from tests.support.synthetic_video import SyntheticVideo, write_video

VIDEO_CONFIG = """<View>
  <Video name="video" value="$video" frameRate="10"/>
  <Labels name="kind" toName="video">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </Labels>
  <VideoRectangle name="box" toName="video" model_score_threshold="0.4"/>
</View>"""
"""'Red box' takes class red through predicted_values, 'Blue' takes class blue by its name."""

LABELS = {"red": "Red box", "blue": "Blue"}


@pytest.fixture
def client(backend_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    """The backend app on one torch thread: on a busy two-core machine two threads track 10-20 times slower."""
    monkeypatch.setenv("TORCH_THREADS", "1")
    with app_client() as test_client:
        yield test_client


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVideo:
    return write_video(tmp_path_factory.mktemp("video") / "boxes.mp4")


def data_uri(path: Path, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def predict(client: FlaskClient, tasks: list[dict[str, Any]], config: str, project: str) -> list[Any]:
    response = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config})
    assert response.status_code == 200, response.json
    return response.json["results"]


def pixel_box(item: dict[str, Any], size: tuple[int, int] = (192, 144)) -> tuple[float, float, float, float]:
    x0, y0 = item["x"] / 100 * size[0], item["y"] / 100 * size[1]
    return x0, y0, x0 + item["width"] / 100 * size[0], y0 + item["height"] / 100 * size[1]


@pytest.mark.parametrize("tracker", ["bytetrack", "botsort"])
def test_each_moving_object_is_one_region_following_it_frame_by_frame(client, video, tracker) -> None:
    config = VIDEO_CONFIG.replace('name="box"', f'name="box" model_tracker="{tracker}"')
    entry = predict(client, [{"id": 1, "data": {"video": data_uri(video.path)}}], config, "40.1")[0]
    regions = entry["result"]
    assert sorted(region["value"]["labels"][0] for region in regions) == ["Blue", "Red box"]
    for region in regions:
        assert (region["from_name"], region["to_name"], region["type"]) == ("box", "video", "videorectangle")
        value = region["value"]
        assert value["framesCount"] == video.frames == 30
        assert value["duration"] == pytest.approx(video.frames / video.fps)
        sequence = value["sequence"]
        assert [item["frame"] for item in sequence] == list(range(1, video.frames + 1))
        for item in sequence:
            assert item["time"] == pytest.approx((item["frame"] - 1) / video.fps)
            assert item["rotation"] == 0
        assert [item["enabled"] for item in sequence] == [True] * (video.frames - 1) + [False]

        class_name = next(name for name, label in LABELS.items() if label == value["labels"][0])
        truths = [next(box for box in boxes if box.label == class_name) for boxes in video.truth]
        ious = [truth.iou(*pixel_box(item)) for truth, item in zip(truths, sequence, strict=True)]
        assert sum(iou >= 0.7 for iou in ious) >= video.frames - 1, ious
        assert min(ious) >= 0.5, ious
        assert 0.4 <= region["score"] <= 1.0
    assert entry["score"] == pytest.approx(sum(region["score"] for region in regions) / 2, abs=1e-3)


def test_a_threshold_above_every_score_gives_no_regions(client, video) -> None:
    strict = VIDEO_CONFIG.replace('model_score_threshold="0.4"', 'model_score_threshold="0.999"')
    entry = predict(client, [{"id": 1, "data": {"video": data_uri(video.path)}}], strict, "41.1")[0]
    assert entry["result"] == [] and entry["score"] == 0


def test_a_video_tag_without_the_video_s_frame_rate_is_warned_about(client, video, caplog) -> None:
    config = VIDEO_CONFIG.replace(' frameRate="10"', "")  # Label Studio then assumes 24 frames per second
    with caplog.at_level(logging.WARNING):
        entry = predict(client, [{"id": 1, "data": {"video": data_uri(video.path)}}], config, "45.1")[0]
    assert len(entry["result"]) == 2
    assert 'set frameRate="10"' in caplog.text


def test_a_broken_video_fails_only_its_own_task(client, video, caplog) -> None:
    broken = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42 not really a video").decode()
    tasks = [{"id": 1, "data": {"video": broken}}, {"id": 2, "data": {"video": data_uri(video.path)}}]
    with caplog.at_level(logging.ERROR):
        results = predict(client, tasks, VIDEO_CONFIG, "42.1")
    assert results[0] == []
    assert len(results[1]["result"]) == 2
    assert "Task 1: no prediction" in caplog.text and "not a readable video" in caplog.text


def test_video_frames_larger_than_media_max_pixels_are_refused_before_decoding(
    client, video, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_MAX_PIXELS", str(192 * 144 - 1))
    with caplog.at_level(logging.ERROR):
        results = predict(client, [{"id": 1, "data": {"video": data_uri(video.path)}}], VIDEO_CONFIG, "46.1")
    assert results == [[]]
    assert "Video frames of 192 x 144 pixels refused before decoding: larger than MEDIA_MAX_PIXELS" in caplog.text


def test_image_predictions_with_the_same_weights_are_unchanged_by_a_video_prediction(
    client, video, sample_images: list[SampleImage], backend_env: Path
) -> None:
    from ultralytics.trackers.track import on_predict_postprocess_end, on_predict_start

    from label_studio_yolo.inference.weights import load_weights

    image_tasks = [{"id": i, "data": {"image": sample.data_uri()}} for i, sample in enumerate(sample_images[:3])]

    def image_regions() -> list[list[tuple[Any, ...]]]:
        results = predict(client, image_tasks, BOXES_CONFIG, "43.1")
        return [[(r["value"], r["score"]) for r in entry["result"]] for entry in results]

    before = image_regions()
    assert len(predict(client, [{"id": 9, "data": {"video": data_uri(video.path)}}], VIDEO_CONFIG, "43.2")[0]["result"])
    assert image_regions() == before

    shared = load_weights(backend_env, WEIGHTS_NAME)  # the cached object both projects predict with
    callbacks = [getattr(cb, "func", cb) for cbs in shared.model.callbacks.values() for cb in cbs]
    assert on_predict_start not in callbacks and on_predict_postprocess_end not in callbacks


def test_an_unknown_tracker_fails_setup_naming_the_supported_ones(client) -> None:
    config = VIDEO_CONFIG.replace('model_score_threshold="0.4"', 'model_tracker="sort"')
    response = client.post("/setup", json={"project": "44.1", "schema": config})
    assert response.status_code == 400
    assert 'model_tracker="sort"' in response.json["error"] and "botsort, bytetrack" in response.json["error"]


def test_interpolation_stops_at_gaps_and_at_the_last_box() -> None:
    boxes = [TrackedBox(frame, "red", 0.9, -10, 10, 50, 200) for frame in (0, 1, 2, 5, 6)]
    sequence = keyframe_sequence(boxes, ImageSize(100, 100), fps=4.0)
    assert [item["frame"] for item in sequence] == [1, 2, 3, 6, 7]
    assert [item["enabled"] for item in sequence] == [True, True, False, True, False]
    assert [item["time"] for item in sequence] == [0.0, 0.25, 0.5, 1.25, 1.5]
    assert (sequence[0]["x"], sequence[0]["y"], sequence[0]["width"], sequence[0]["height"]) == (0, 10, 50, 90)


@pytest.mark.parametrize(
    ("value", "suffix"),
    [
        ("/data/upload/3/1a2b-clip.MOV", ".mov"),
        ("data:video/webm;base64,AAAA", ".webm"),
        ("/data/local-files/?d=videos/clip.avi", ".avi"),
        ("https://example.com/stream?id=4", ".mp4"),
        ("/data/upload/3/notes.txt", ".mp4"),
    ],
)
def test_the_temporary_video_file_keeps_a_video_suffix(value: str, suffix: str) -> None:
    assert video_suffix(value) == suffix
