"""A long video within ``PREDICT_TIME_BUDGET``: tracking stops at the deadline and the task gets no prediction, and
image predictions of other projects go on while a video is tracked.

The video is long but tiny (:func:`write_long_video`: 96x64 frames, one red box moving), so it tracks at tens of
frames a second with the tiny detector of ``conftest.py`` and fits in a ``data:`` URI.
"""

from __future__ import annotations

import base64
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.inference import tracking
from label_studio_yolo.inference.tracking import TrackingStopped, track_task_video
from label_studio_yolo.prediction.project import build_project_predictor
from label_studio_yolo.prediction.tasks import TaskPredictor
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.tags.video import tracking_options
from tests.e2e.conftest import BackendServer, backend_server
from tests.integration.test_video_tracking import VIDEO_CONFIG, data_uri
from tests.support.synthetic_video import write_video
from tests.support.waiting import eventually

LONG_VIDEO_FRAMES = 1500
"""Frames of the long video: 30 s or more of tracking on two cores, far more than the budgets below."""


def write_long_video(path: Path, frames: int = LONG_VIDEO_FRAMES, size: tuple[int, int] = (96, 64)) -> Path:
    """A ``frames``-frame mp4v video of a red box moving over a grey background (a few hundred bytes a frame)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write mp4v video to {path}"
    try:
        for index in range(frames):
            frame = np.full((height, width, 3), 128, dtype=np.uint8)
            x = index % (width - 24)
            frame[20:44, x : x + 24] = (0, 0, 255)  # BGR red
            writer.write(frame)
    finally:
        writer.release()
    return path


@pytest.fixture(scope="module")
def long_video_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_long_video(tmp_path_factory.mktemp("long-video") / "long.mp4")
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def video_predictor(config: str = VIDEO_CONFIG) -> TaskPredictor:
    return build_project_predictor(config, project_id=1, settings=BackendSettings(inference_runtime="pytorch"))


def tracking_run(predictor: TaskPredictor, uri: str) -> tuple[Any, ...]:
    """What the predictor passes to ``track_task_video`` for its one video control."""
    return (predictor.controls[0].weights, uri, predictor.loader, tracking_options(predictor.controls))


def deadline_passing_at_check(check: int) -> Callable[[float | None], bool]:
    """A stand-in for the tracker's deadline check whose deadline passes at its ``check``-th call (the first call is
    made before the first frame): a clock counted in frames, the same on a busy machine as on an idle one."""
    calls = itertools.count(1)
    return lambda deadline: deadline is not None and next(calls) >= check


def test_tracking_stops_between_frames_once_the_deadline_passes(
    backend_env: Path, long_video_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = video_predictor()
    monkeypatch.setattr("label_studio_yolo.inference.tracking._passed", deadline_passing_at_check(6))

    with pytest.raises(TrackingStopped) as stopped:
        track_task_video(*tracking_run(predictor, long_video_uri), deadline=time.monotonic() + 3600)

    assert (stopped.value.tracked, stopped.value.total) == (5, LONG_VIDEO_FRAMES), "no frame after the deadline"


def test_a_video_whose_deadline_passed_while_it_waited_is_not_tracked(backend_env: Path, long_video_uri: str) -> None:
    predictor = video_predictor()

    with pytest.raises(TrackingStopped) as stopped:
        track_task_video(*tracking_run(predictor, long_video_uri), deadline=time.monotonic() - 1)

    assert (stopped.value.tracked, stopped.value.total) == (0, LONG_VIDEO_FRAMES)


def budget_reasons(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """The logged reason of each of tasks 7 and 8."""
    lines = [record.getMessage() for record in caplog.records]
    return {task: line for task in ("7", "8") for line in lines if line.startswith(f"Task {task}: no prediction")}


def frames_tracked(reason: str) -> int:
    found = re.search(r"after tracking (\d+) of", reason)
    return int(found.group(1)) if found else 0


def test_a_video_over_the_budget_gets_no_prediction_and_a_reason_with_advice(
    backend_env: Path, long_video_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A partly tracked video would look complete in Label Studio, which never asks again for a task that has a
    prediction of the current model version; ``[]`` has it asked again. Tasks after it get ``[]`` (budget spent).

    The two tasks load in two lanes at once; either video may reach the tracking thread first."""
    tasks = [
        {"id": 7, "data": {"video": long_video_uri}},
        {"id": 8, "data": {"video": long_video_uri}},
    ]
    with caplog.at_level(logging.WARNING):
        results = video_predictor().predict(tasks, time_budget=2.0)

    assert results == [[], []]
    reasons = budget_reasons(caplog)
    tracked = sorted(frames_tracked(reason) for reason in reasons.values())
    # How many frames fit in 2 s depends on the machine (none, when loading the video took longer); never all, and
    # never any for the video that waited.
    assert len(reasons) == 2 and tracked[0] == 0 and tracked[1] < LONG_VIDEO_FRAMES
    for reason in reasons.values():
        assert "time budget of 2 s ran out" in reason and "`label-studio-yolo predict`" in reason
        assert f"after tracking {frames_tracked(reason)} of {LONG_VIDEO_FRAMES} frames" in reason or (
            "while its video waited" in reason
        )
    assert "Time budget of 2 s spent after 1 of 2 tasks" in caplog.text


def test_a_video_that_waited_for_another_says_that_its_budget_went_there(
    backend_env: Path, long_video_uri: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process tracks one video at a time: a video queued behind another one may spend its budget waiting (a
    30-frame video got [] with no word of why, behind another request's long video)."""
    second_queued = threading.Event()
    queued = itertools.count(1)
    on_tracking_thread = tracking.on_tracking_thread

    def queue(function: Callable[..., Any], *args: Any) -> Any:
        if next(queued) == 2:
            second_queued.set()
        return on_tracking_thread(function, *args)

    monkeypatch.setattr(tracking, "on_tracking_thread", queue)
    # The first video's deadline passes once the second one is queued behind it, whatever this machine's speed.
    monkeypatch.setattr(tracking, "_passed", lambda deadline: deadline is not None and second_queued.is_set())
    tasks = [{"id": 7, "data": {"video": long_video_uri}}, {"id": 8, "data": {"video": long_video_uri}}]

    with caplog.at_level(logging.WARNING):
        results = video_predictor().predict(tasks, time_budget=60)

    assert results == [[], []]
    waited = [reason for reason in budget_reasons(caplog).values() if "while its video waited" in reason]
    assert len(waited) == 1, budget_reasons(caplog)
    assert re.search(r"ran out while its video waited \d+ s for 1 other video to be tracked \(a process", waited[0])
    assert "raise WORKERS (each process tracks its own video)" in waited[0]


FORGED_NAMES_CONFIG = (
    VIDEO_CONFIG.replace('"video"', '"v&#10;ERROR forged"')
    .replace('frameRate="10"', 'frameRate="24"')
    .replace(
        "<VideoRectangle",
        '<VideoRectangle name="b&#10;ERROR forged" toName="v&#10;ERROR forged" '
        'model_tracker="botsort"/>\n  <VideoRectangle',
    )
)
"""The video config with a newline in the names of the <Video> and of a second <VideoRectangle> that asks for
another tracker, and a frameRate that is not the video's: both warnings name the controls."""


def test_request_values_in_log_lines_are_escaped(
    backend_env: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "7\nERROR forged line\u2028"
    tasks: list[Any] = [
        {"id": forged, "data": {"video\nERROR forged key": "x"}},
        {"id": forged, "data": {"video": "data:video/mp4;base64,bm90IGEgdmlkZW8=\nERROR forged uri"}},
    ]
    video = {"id": 3, "data": {"video": data_uri(write_video(tmp_path / "boxes.mp4").path)}}
    with caplog.at_level(logging.INFO):
        results = video_predictor().predict(tasks)
        named = video_predictor(FORGED_NAMES_CONFIG).predict([video])

    assert results == [[], []] and len(named[0]["result"]) == 4, "two boxes, once for each <VideoRectangle>"
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("label_studio_yolo")]
    assert sum("Task 7\\nERROR forged line\\u2028: no prediction" in message for message in messages) == 2
    assert "video\\nERROR forged key" in caplog.text
    assert "['b\\nERROR forged', 'box'] share weights" in caplog.text
    assert '<Video name="v\\nERROR forged"> has frameRate 24' in caplog.text
    assert not [message for message in messages if "\n" in message or "\u2028" in message]


def test_two_videos_of_the_same_weights_at_once_get_the_tracks_each_gets_alone(
    backend_env: Path, tmp_path: Path
) -> None:
    """Videos no longer take the weights' lock: the tracking thread takes them one at a time instead."""
    uri = data_uri(write_video(tmp_path / "boxes.mp4").path)
    predictor = video_predictor()
    tasks = [{"id": 1, "data": {"video": uri}}]
    alone = regions_of(predictor.predict(tasks))

    with ThreadPoolExecutor(2) as callers:
        together = [regions_of(result) for result in callers.map(lambda _: predictor.predict(tasks), range(2))]

    assert len(alone) == 2, "the red and the blue box"
    assert together == [alone, alone]


def regions_of(results: list[Any]) -> list[tuple[str, int, float]]:
    """Each region's label, keyframe count and score (region ids are random)."""
    return sorted(
        (r["value"]["labels"][0], len(r["value"]["sequence"]), round(r["score"], 4)) for r in results[0]["result"]
    )


# --- Under gunicorn: a long video request and an image request of another project at the same time -------------

BUDGET = 8.0
"""PREDICT_TIME_BUDGET of the server below, in seconds: long enough for three small image requests on a busy machine,
a fraction of the long video's tracking."""


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """The backend as users run it on two cores: two request threads, two torch threads, PyTorch."""
    settings = {"TORCH_THREADS": "2", "INFERENCE_RUNTIME": "pytorch", "PREDICT_TIME_BUDGET": str(BUDGET)}
    with backend_server(model_root, tmp_path_factory.mktemp("video-budget"), threads=2, **settings) as backend:
        yield backend


def timed_predict(server: BackendServer, project: str, config: str, task: dict[str, Any]) -> tuple[float, list[Any]]:
    started = time.monotonic()
    body = {"project": project, "label_config": config, "tasks": [task]}
    response = requests.post(f"{server.url}/predict", json=body, timeout=120)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    return took, response.json()["results"]


def test_a_long_video_answers_within_the_budget_and_does_not_hold_up_image_requests(
    server: BackendServer, long_video_uri: str, sample_images: list[SampleImage]
) -> None:
    image_task = {"id": 2, "data": {"image": sample_images[0].data_uri()}}
    video_task = {"id": 1, "data": {"video": long_video_uri}}
    for project, config in (("50.1", VIDEO_CONFIG), ("51.1", BOXES_CONFIG)):  # build both projects' models
        assert requests.post(f"{server.url}/setup", json={"project": project, "schema": config}, timeout=60).ok
    alone = max(timed_predict(server, "51.1", BOXES_CONFIG, image_task)[0] for _ in range(3))

    with ThreadPoolExecutor(1) as client:
        video = client.submit(timed_predict, server, "50.1", VIDEO_CONFIG, video_task)
        # Logged by the first video a process tracks, just before its first frame.
        assert eventually(lambda: "Loaded a tracking instance" in server.log.read_text()), server.log.read_text()
        during = [timed_predict(server, "51.1", BOXES_CONFIG, image_task) for _ in range(3)]
        still_tracking = not video.done()
        video_took, video_results = video.result(timeout=120)

    slowest = max(took for took, _ in during)
    assert still_tracking, (
        f"the images were not answered while the video was tracked ({slowest:.2f} s, {alone:.2f} alone)"
    )
    assert all(len(results[0]["result"]) == 2 for _, results in during), "each image has its two boxes"
    assert video_results == [[]]
    assert video_took >= BUDGET, "the video was tracked until its budget was spent"
    assert f"Task 1: no prediction, the time budget of {BUDGET:g} s ran out after tracking" in server.log.read_text()
