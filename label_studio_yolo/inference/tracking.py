"""Follow objects through a task's video with ultralytics tracking (ByteTrack or BoT-SORT).

The video is fetched like an image, written to a temporary file that is always deleted, and tracked once per model:
every track id becomes one :class:`Track` with the object's box on each frame the tracker reported it.

Tracking shares nothing that image predictions wait for, so a long video never holds up an image request: it runs
on a second YOLO instance of the weight file (``Model.track`` leaves tracker callbacks on its model), on the
process's tracking thread, one video at a time, with :data:`TRACKING_THREADS` torch threads. With a ``deadline``,
tracking stops between frames once it has passed and raises :class:`TrackingStopped`.

Example:
    >>> output = track_task_video(weights, "/data/upload/3/cars.mp4", loader, TrackingOptions(0.25))  # doctest: +SKIP
    >>> output.video, len(output.tracks)
    (VideoInfo(frames=240, fps=24.0), 3)
"""

from __future__ import annotations

import logging
import math
import mimetypes
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

from label_studio_yolo.errors import MediaError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import ModelOutput, Track, TrackedBox, VideoInfo
from label_studio_yolo.inference.threads import DedicatedThread
from label_studio_yolo.inference.ultralytics_process import load_yolo
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.logsafe import printable, url_shown
from label_studio_yolo.media.loader import LOCAL_FILES_PREFIX, ImageLoader
from label_studio_yolo.media.storage import StorageFile
from label_studio_yolo.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from ultralytics import YOLO

logger = logging.getLogger(__name__)

TRACKERS = {"bytetrack": "bytetrack.yaml", "botsort": "botsort.yaml"}
"""Tracker name -> the ultralytics tracker config it runs with."""

DEFAULT_TRACKER = "bytetrack"
"""Tracker used when a control names none."""

DEFAULT_VIDEO_SUFFIX = ".mp4"
"""File suffix given to a video whose URL has none ultralytics knows (it picks its reader by suffix)."""

TRACKING_THREADS = 1
"""Torch threads a video is tracked with: one starts no second OpenMP team (see
:mod:`label_studio_yolo.inference.threads`) and leaves the other cores to image requests."""

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")

_videos_tracked_now = 0
"""Videos the tracking thread is tracking at this moment (0 or 1); read by :func:`threads_beside_tracking`."""

_videos_done = 0
"""Videos the tracking thread has finished with (tracked, stopped or failed): a video that was queued when this was
``n`` and starts when it is ``n + k`` waited for ``k`` other videos."""


class TrackingStopped(Exception):
    """The deadline passed before the video was tracked to its end; ``tracked`` of ``total`` frames were (``total``
    is 0 when the video does not say how many frames it has). ``waited_for`` other videos were tracked first (a
    process tracks one at a time), which took ``waited`` seconds of its budget."""

    def __init__(self, tracked: int, total: int, waited_for: int = 0, waited: float = 0.0) -> None:
        of_total = f"of {total} " if total else ""
        super().__init__(f"the deadline passed after tracking {tracked} {of_total}frames of the video")
        self.tracked, self.total = tracked, total
        self.waited_for, self.waited = waited_for, waited


@dataclass(frozen=True)
class TrackingOptions:
    """How to track: the lowest score an object is passed to the tracker with, and the tracker's name."""

    conf: float
    tracker: str = DEFAULT_TRACKER


def track_task_video(
    weights: LoadedWeights,
    value: object,
    loader: ImageLoader,
    options: TrackingOptions,
    imgsz: int | None = None,
    deadline: float | None = None,
) -> ModelOutput:
    """Track the objects of the video at ``value`` (a task-data string, or a cloud-storage file) with ``weights``.

    Objects scored below ``options.conf`` are not passed to the tracker. The output holds the video's frame size,
    one :class:`Track` per track id and the video's frame count and frame rate. ``deadline`` (on
    :func:`time.monotonic`'s clock) stops tracking between frames.

    Raises:
        MediaError: the video cannot be fetched, is not a readable video, or has no frames.
        TrackingStopped: the deadline passed before the last frame (then the tracks so far are dropped).
    """
    if not isinstance(value, StorageFile) and (not isinstance(value, str) or not value.strip()):
        raise MediaError(f"Task data value {url_shown(value)} is not a video URL or path")
    data = loader.read_bytes(value)
    conf, tracker = options.conf, TRACKERS[options.tracker]
    with tempfile.TemporaryDirectory(prefix="ls-yolo-video-") as folder:
        path = Path(folder) / f"video{video_suffix(str(value).strip())}"
        path.write_bytes(data)
        del data
        size, info = read_video_info(path, loader.settings.max_pixels)
        logger.info(
            "Tracking a video of %d frames (%dx%d, %.3g fps) with %s",
            info.frames,
            size.width,
            size.height,
            info.fps,
            tracker,
        )
        run = _Run(weights, path, conf, tracker, imgsz, deadline, info.frames, _videos_done, time.monotonic())
        tracks, frames_read = on_tracking_thread(_track, run)
    if frames_read == 0:
        raise MediaError("The video has no frames that could be decoded")
    video = VideoInfo(frames=max(info.frames, frames_read), fps=info.fps)
    return ModelOutput(size, tracks=tracks, video=video)


def threads_beside_tracking(threads: int | None) -> int | None:
    """The torch threads for an image prediction now: ``threads``, less :data:`TRACKING_THREADS` (at least 1) while
    a video is tracked: more torch threads than free cores make each parallel region wait for a descheduled thread.
    """
    if threads and _videos_tracked_now:
        return max(1, threads - TRACKING_THREADS)
    return threads


def video_suffix(value: str) -> str:
    """The video file suffix of a task-data value (``.mp4`` for ``/data/upload/1/a.mp4`` or ``data:video/mp4``).

    ultralytics reads a file as a video only when its suffix is a video format it knows; others get
    :data:`DEFAULT_VIDEO_SUFFIX` (OpenCV then detects the container from the content).
    """
    from ultralytics.data.utils import VID_FORMATS

    if value.startswith("data:"):
        mime = value[5:].split(";", 1)[0].split(",", 1)[0].strip().lower()
        suffix = mimetypes.guess_extension(mime) or ""
    else:
        parts = urlsplit(value)
        name = parts.path
        if parts.path.startswith(LOCAL_FILES_PREFIX):
            name = parse_qs(parts.query).get("d", [""])[0]
        suffix = PurePosixPath(name).suffix.lower()
    return suffix if suffix.lstrip(".") in VID_FORMATS else DEFAULT_VIDEO_SUFFIX


def read_video_info(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ImageSize, VideoInfo]:
    """The frame size, frame count and frame rate of the video file at ``path``, read with OpenCV.

    The size is that of the first decoded frame (with the file's rotation applied, as browsers show it). A frame
    count OpenCV cannot tell is given as 0.

    Raises:
        MediaError: the file is not a video OpenCV can open, its frames are larger than ``max_pixels``
            (``MEDIA_MAX_PIXELS``, from the container, before a frame is decoded), it has no frame rate, or no frame
            can be decoded.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError("Content is not a readable video (OpenCV could not open it)")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if declared[0] * declared[1] > max_pixels:
            raise MediaError(
                f"Video frames of {declared[0]} x {declared[1]} pixels refused before decoding: larger than "
                f"MEDIA_MAX_PIXELS ({max_pixels} pixels); raise MEDIA_MAX_PIXELS to accept them"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise MediaError("The video has no frames that could be decoded")
    if not math.isfinite(fps) or fps <= 0:
        raise MediaError("The video has no frame rate, so frame times cannot be given")
    height, width = frame.shape[:2]
    return ImageSize(int(width), int(height)), VideoInfo(frames=max(frames, 0), fps=fps)


@dataclass(frozen=True)
class _Run:
    """One video to track: its file, the weights and options, the deadline and the frame count the file gives."""

    weights: LoadedWeights
    path: Path
    conf: float
    tracker: str
    imgsz: int | None
    deadline: float | None
    total: int
    done_before: int = 0
    """:data:`_videos_done` when the video was queued."""
    queued_at: float = 0.0


def _track(run: _Run) -> tuple[list[Track], int]:
    """Run the tracker over the frames of ``run``'s video; returns the tracks and the frames read.

    Raises:
        TrackingStopped: the deadline passed before the last frame (checked before the first and after each frame:
            a video whose last frame is done is complete, however late).
    """
    global _videos_done
    try:
        return _track_frames(run)
    finally:
        _videos_done += 1  # only the tracking thread writes it


def _track_frames(run: _Run) -> tuple[list[Track], int]:
    options: dict[str, Any] = {
        "conf": run.conf,
        "tracker": run.tracker,
        "verbose": False,
        "device": _device(run.weights),
    }
    if run.imgsz:
        options["imgsz"] = run.imgsz
    if _passed(run.deadline):  # it waited for other videos until its own time was up
        waited_for = _videos_done - run.done_before
        raise TrackingStopped(0, run.total, waited_for, time.monotonic() - run.queued_at if waited_for else 0.0)
    boxes: dict[int, list[TrackedBox]] = {}
    frames_read = 0
    tracking = _tracking_model(run.weights)
    results = tracking.model.track(source=str(run.path), stream=True, persist=False, **options)
    global _videos_tracked_now
    _videos_tracked_now += 1  # only the tracking thread writes it
    try:
        with closing(results):
            for frame, result in enumerate(results):
                frames_read = frame + 1
                for track_id, box in _tracked_boxes(frame, result):
                    boxes.setdefault(track_id, []).append(box)
                if _passed(run.deadline) and frames_read != run.total:
                    raise TrackingStopped(frames_read, run.total)
    finally:
        _videos_tracked_now -= 1
    return [Track(track_id, tuple(found)) for track_id, found in boxes.items()], frames_read


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _tracked_boxes(frame: int, result: Any) -> Iterable[tuple[int, TrackedBox]]:
    """The boxes of one frame's result that carry a track id, in pixels."""
    found = result.boxes
    if found is None or found.id is None:
        return []
    rows = zip(found.id.tolist(), found.cls.tolist(), found.conf.tolist(), found.xyxy.tolist(), strict=True)
    return [
        (int(track_id), TrackedBox(frame, result.names[int(cls)], float(score), *map(float, xyxy)))
        for track_id, cls, score, xyxy in rows
    ]


def _device(weights: LoadedWeights) -> str:
    """The torch device the weights were loaded on (``cpu``, ``cuda:0``, ...)."""
    return weights.requested.device


@dataclass
class _TrackingModel:
    """A YOLO instance used only for tracking (on the tracking thread only, so it needs no lock of its own)."""

    model: YOLO
    key: tuple[Path, int, int]
    """The weight file's path, size and modification time when it was loaded."""

    def apply_threads(self, predictor: object) -> None:
        """``on_predict_start`` callback: building a predictor resets torch's threads to ``cpu_count - 1``."""
        del predictor
        _use_tracking_threads()


_tracking_models: dict[Path, _TrackingModel] = {}
_tracking_lock = threading.Lock()


def _tracking_model(weights: LoadedWeights) -> _TrackingModel:
    """The tracking-only YOLO instance of ``weights``' file, loaded once per file version (path, size and mtime); a
    replaced file is loaded again and the old instance dropped."""
    stat = weights.path.stat()
    key = (weights.path, stat.st_size, stat.st_mtime_ns)
    with _tracking_lock:
        cached = _tracking_models.get(weights.path)
        if cached is None or cached.key != key:
            model = load_yolo(weights.path)
            device = _device(weights)
            if device != "cpu":
                model.to(device)
            cached = _TrackingModel(model, key)
            model.add_callback("on_predict_start", cached.apply_threads)
            _tracking_models[weights.path] = cached
            logger.info("Loaded a tracking instance of weights %s", printable(str(weights.path)))
    return cached


def on_tracking_thread(function: Callable[_Params, _Result], *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
    """Run ``function`` on this process's tracking thread, after the videos queued before it; wait and return its
    result (or raise its exception).

    One thread tracks every video, so videos take at most :data:`TRACKING_THREADS` cores and the tracking instances
    are never used by two threads at once.
    """
    return _tracking_thread.call(function, *args, **kwargs)


def _use_tracking_threads() -> None:
    """Give the calling thread :data:`TRACKING_THREADS` torch threads (OpenMP's thread count is per thread)."""
    import torch

    torch.set_num_threads(TRACKING_THREADS)


_tracking_thread = DedicatedThread("tracking", initializer=_use_tracking_threads)
