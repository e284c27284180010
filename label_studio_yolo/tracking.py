"""Follow objects through a task's video with ultralytics tracking (ByteTrack or BoT-SORT).

The video is fetched like an image (Label Studio uploads, URLs, local files, ``data:`` URIs), written to a temporary
file that is always deleted, and tracked once per model: every track id becomes one :class:`Track` with the object's
box on each frame the tracker reported it. ``model_tracker="botsort"`` on a ``<VideoRectangle>`` picks BoT-SORT;
ByteTrack is the default.

Tracking runs on a second YOLO instance of the same weight file, never on the one image controls predict with:
``Model.track`` registers tracker callbacks on the object it is called on, and those would then also run on later
plain predictions of that object.

Example:
    >>> output = track_task_video(controls, "/data/upload/3/cars.mp4", loader, imgsz=None, threads=2)  # doctest: +SKIP
    >>> output.video, len(output.tracks)
    (VideoInfo(frames=240, fps=24.0), 3)
"""

from __future__ import annotations

import logging
import math
import mimetypes
import tempfile
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from label_studio_yolo.inference import ModelOutput, Track, TrackedBox, VideoInfo
from label_studio_yolo.label_config import ControlSpec, LabelConfigError
from label_studio_yolo.media import LOCAL_FILES_PREFIX, ImageLoader, MediaError
from label_studio_yolo.regions import ImageSize
from label_studio_yolo.weights import LoadedWeights

if TYPE_CHECKING:
    from ultralytics import YOLO

    from label_studio_yolo.controls import ControlPredictor

logger = logging.getLogger(__name__)

TRACKER_ATTR = "model_tracker"
"""``<VideoRectangle>`` attribute naming the tracker: ``bytetrack`` (default) or ``botsort``."""

TRACKERS = {"bytetrack": "bytetrack.yaml", "botsort": "botsort.yaml"}
"""Tracker name -> the ultralytics tracker config it runs with."""

DEFAULT_TRACKER = "bytetrack"
"""Tracker used when a control names none."""

DEFAULT_VIDEO_SUFFIX = ".mp4"
"""File suffix given to a video whose URL has none ultralytics knows (it picks its reader by suffix)."""


def tracker_name(spec: ControlSpec) -> str:
    """The tracker ``spec``'s control asks for (``model_tracker``, any case), else :data:`DEFAULT_TRACKER`.

    Raises:
        LabelConfigError: the attribute names a tracker that is not supported.
    """
    raw = spec.attribute(TRACKER_ATTR)
    name = (raw or DEFAULT_TRACKER).strip().lower().removesuffix(".yaml")
    if name not in TRACKERS:
        raise LabelConfigError(
            f'<{spec.control_type} name="{spec.from_name}"> has {TRACKER_ATTR}="{raw}"; it must be one of '
            f'{", ".join(sorted(TRACKERS))}, e.g. <{spec.control_type} name="{spec.from_name}" '
            f'toName="{spec.to_name}" {TRACKER_ATTR}="botsort"/>.'
        )
    return name


def track_task_video(
    controls: Sequence[ControlPredictor],
    value: object,
    loader: ImageLoader,
    imgsz: int | None = None,
    threads: int | None = None,
) -> ModelOutput:
    """Track the objects of the video at ``value`` (a task-data string) with the controls' shared weights.

    Objects below the lowest threshold of ``controls`` are not passed to the tracker. The output holds the
    video's frame size, one :class:`Track` per track id and the video's frame count and frame rate.

    Raises:
        MediaError: the video cannot be fetched, is not a readable video, or has no frames.
    """
    if not isinstance(value, str) or not value.strip():
        raise MediaError(f"Task data value {value!r} is not a video URL or path")
    data = loader.read_bytes(value.strip())
    weights = controls[0].weights
    conf = min(control.spec.threshold for control in controls)
    tracker = _tracker_for(controls)
    with tempfile.TemporaryDirectory(prefix="ls-yolo-video-") as folder:
        path = Path(folder) / f"video{video_suffix(value.strip())}"
        path.write_bytes(data)
        del data
        size, info = read_video_info(path)
        tracks, frames_read = _track(weights, path, conf, tracker, imgsz, threads)
    if frames_read == 0:
        raise MediaError("The video has no frames that could be decoded")
    video = VideoInfo(frames=max(info.frames, frames_read), fps=info.fps)
    return ModelOutput(size, tracks=tracks, video=video)


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


def read_video_info(path: Path) -> tuple[ImageSize, VideoInfo]:
    """The frame size, frame count and frame rate of the video file at ``path``, read with OpenCV.

    The size is that of the first decoded frame (with the file's rotation applied, as browsers show it). A frame
    count OpenCV cannot tell is given as 0.

    Raises:
        MediaError: the file is not a video OpenCV can open, has no frame rate, or no frame can be decoded.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError("Content is not a readable video (OpenCV could not open it)")
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


def _tracker_for(controls: Sequence[ControlPredictor]) -> str:
    """The tracker config for controls that share one tracking run; the first control's wins if they differ."""
    names = [tracker_name(control.spec) for control in controls]
    if len(set(names)) > 1:
        logger.warning(
            "Controls %s share weights but ask for trackers %s; tracking once with %s",
            [control.spec.from_name for control in controls],
            names,
            names[0],
        )
    return TRACKERS[names[0]]


def _track(
    weights: LoadedWeights, path: Path, conf: float, tracker: str, imgsz: int | None, threads: int | None
) -> tuple[list[Track], int]:
    """Run the tracker over every frame of the video at ``path``; returns the tracks and the frames read."""
    import torch

    options: dict[str, Any] = {"conf": conf, "tracker": tracker, "verbose": False, "device": _device(weights)}
    if imgsz:
        options["imgsz"] = imgsz
    boxes: dict[int, list[TrackedBox]] = {}
    frames_read = 0
    with weights.lock:
        tracking = _tracking_model(weights)
        tracking.threads = threads
        if threads:
            torch.set_num_threads(threads)
        results = tracking.model.track(source=str(path), stream=True, persist=False, **options)
        with closing(results):
            for frame, result in enumerate(results):
                frames_read = frame + 1
                for track_id, box in _tracked_boxes(frame, result):
                    boxes.setdefault(track_id, []).append(box)
    return [Track(track_id, tuple(found)) for track_id, found in boxes.items()], frames_read


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
    device = getattr(weights.model, "device", None)
    return str(device) if device is not None else "cpu"


@dataclass
class _TrackingModel:
    """A YOLO instance used only for tracking, and the torch thread count its next run should use."""

    model: YOLO
    key: tuple[Path, int, int]
    """The weight file's path, size and modification time when it was loaded."""
    threads: int | None = None

    def apply_threads(self, predictor: object) -> None:
        """``on_predict_start`` callback: building a predictor resets torch's threads to ``cpu_count - 1``."""
        del predictor
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)


_tracking_models: dict[Path, _TrackingModel] = {}
_tracking_lock = threading.Lock()


def _tracking_model(weights: LoadedWeights) -> _TrackingModel:
    """The tracking-only YOLO instance of ``weights``' file, loaded once per file version (size and mtime).

    Like :mod:`label_studio_yolo.weights`' cache it is keyed by the file's path, size and modification time; a
    replaced file is loaded again and the instance of its previous content is dropped.
    """
    from ultralytics import YOLO

    stat = weights.path.stat()
    key = (weights.path, stat.st_size, stat.st_mtime_ns)
    with _tracking_lock:
        cached = _tracking_models.get(weights.path)
        if cached is None or cached.key != key:
            model = YOLO(str(weights.path))
            device = _device(weights)
            if device != "cpu":
                model.to(device)
            cached = _TrackingModel(model, key)
            model.add_callback("on_predict_start", cached.apply_threads)
            _tracking_models[weights.path] = cached
            logger.info("Loaded a tracking instance of weights %s", weights.path)
    return cached
