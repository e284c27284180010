"""Run a YOLO model on one image and return typed results, whatever the model's task.

ultralytics gives ``boxes`` (detect, segment, pose), ``masks`` (segment), ``keypoints`` (pose), ``obb`` (rotated
boxes) or ``probs`` (classify). :func:`run_model` turns them into one :class:`ModelOutput` of plain Python values
in pixels of the original image, so each control tag reads only what it needs.

Example:
    >>> output = run_model(loaded, image, conf=0.25)          # doctest: +SKIP
    >>> output.detections[0].class_name, round(output.detections[0].score, 2)
    ('person', 0.88)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.threads import on_torch_thread
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.media.decode import Pixels
from label_studio_yolo.settings import OPENVINO

ImageInput = Pixels | Image.Image
"""What a model runs on: a BGR ``uint8`` array (what ultralytics reads from a file) or a Pillow RGB image."""


@dataclass(frozen=True)
class Keypoint:
    """One keypoint of a detected object, in pixels, with the model's visibility score."""

    x: float
    y: float
    score: float


@dataclass(frozen=True)
class RotatedBox:
    """An oriented box in pixels: centre, width and height, and clockwise rotation in radians (y points down)."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float


@dataclass(frozen=True)
class Detection:
    """One detected object in pixels of the original image (x0, y0 top-left; x1, y1 bottom-right).

    ``index`` is the object's position in the model's output (its mask in :attr:`ModelOutput.masks`). Segmentation
    models also give the outline (``polygon``), pose models the ``keypoints``, OBB models the ``rotated`` box (then
    x0..y1 bound it).
    """

    class_name: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float
    polygon: tuple[tuple[float, float], ...] = ()
    keypoints: tuple[Keypoint, ...] = ()
    rotated: RotatedBox | None = None
    index: int = 0


@dataclass(frozen=True)
class ClassScore:
    """A classification model's probability for one class of the whole image."""

    class_name: str
    score: float


@dataclass(frozen=True)
class TrackedBox:
    """Where a tracked object is on one video frame (0-based), in pixels, with its class and score there."""

    frame: int
    class_name: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Track:
    """One object followed through a video by the tracker: its id and its box on each frame it was seen."""

    track_id: int
    boxes: tuple[TrackedBox, ...]


@dataclass(frozen=True)
class VideoInfo:
    """A video's frame count and frame rate (its duration is ``frames / fps`` seconds)."""

    frames: int
    fps: float


class InstanceMasks:
    """A segmentation model's masks, scaled to the original image only when a control asks for one."""

    def __init__(self, masks: torch.Tensor, size: ImageSize) -> None:
        self._masks = masks
        self._size = size

    def full_size(self, index: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Object ``index``'s mask as a boolean array of the original image's height and width (scaled on the torch
        thread: scaling a mask to a photo's size is parallel work)."""
        return on_torch_thread(self._full_size, index)

    def _full_size(self, index: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        from ultralytics.utils.ops import scale_masks

        scaled = scale_masks(self._masks[index][None, None].float(), (self._size.height, self._size.width))
        return np.asarray(scaled[0, 0].cpu().numpy() > 0.5)


@dataclass(frozen=True)
class ModelOutput:
    """What one model says about one image (objects and/or class probabilities) or one video (tracks)."""

    size: ImageSize
    detections: list[Detection] = field(default_factory=list)
    classes: list[ClassScore] = field(default_factory=list)
    masks: InstanceMasks | None = None
    tracks: list[Track] = field(default_factory=list)
    video: VideoInfo | None = None


def run_model(
    weights: LoadedWeights, image: ImageInput, conf: float, imgsz: int | None = None, threads: int | None = None
) -> ModelOutput:
    """Run the model on ``image`` (a BGR array, as from a file, or a Pillow image); objects below ``conf`` are left
    out, class probabilities are all kept.

    ``imgsz`` unset means the size the weights were trained at. Calls are serialised per model (its predictor is not
    thread-safe); PyTorch with more than one thread runs on the process's torch thread.
    """
    weights.ready_model()  # the first start of a weight file: wait for its export
    if weights.runtime == OPENVINO or threads == 1:
        return _run_model(weights, image, conf, imgsz, threads)
    return on_torch_thread(_run_model, weights, image, conf, imgsz, threads)


def _run_model(
    weights: LoadedWeights, image: ImageInput, conf: float, imgsz: int | None, threads: int | None
) -> ModelOutput:
    options: dict[str, object] = {"conf": conf, "verbose": False}
    if imgsz or weights.imgsz:
        options["imgsz"] = imgsz or weights.imgsz  # an exported model does not know the size it was trained at
    with weights.lock:
        _set_torch_threads(weights, threads)
        result = weights.ready_model().predict(image, **options)[0]
    size = ImageSize(*image.size) if isinstance(image, Image.Image) else ImageSize(image.shape[1], image.shape[0])
    masks = InstanceMasks(result.masks.data, size) if result.masks is not None else None
    return ModelOutput(size, _detections(result), _class_scores(result), masks)


def _set_torch_threads(weights: LoadedWeights, threads: int | None) -> None:
    """Give torch ``threads`` threads (ultralytics' ``select_device()`` resets them to cpu_count - 1), or one on
    OpenVINO.

    On OpenVINO, torch only pre- and post-processes; with more threads its parallel loops fight OpenVINO's for cores.
    """
    if weights.runtime == OPENVINO:
        torch.set_num_threads(1)
    elif threads:
        torch.set_num_threads(threads)


def detect(
    weights: LoadedWeights, image: ImageInput, conf: float, imgsz: int | None = None, threads: int | None = None
) -> list[Detection]:
    """The objects found on ``image`` with a score of at least ``conf``."""
    return run_model(weights, image, conf, imgsz, threads).detections


def _detections(result: Any) -> list[Detection]:
    if result.obb is not None:
        return _rotated_detections(result)
    boxes = result.boxes
    if boxes is None:
        return []
    count = len(boxes)
    outlines = result.masks.xy if result.masks is not None else [()] * count
    keypoints = _keypoints(result.keypoints) if result.keypoints is not None else [()] * count
    detections = []
    rows = zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), outlines, keypoints, strict=True)
    for index, (cls, score, xyxy, outline, points) in enumerate(rows):
        x0, y0, x1, y1 = _box(xyxy)
        name = result.names[int(cls)]
        detections.append(Detection(name, float(score), x0, y0, x1, y1, _points(outline), points, index=index))
    return detections


def _rotated_detections(result: Any) -> list[Detection]:
    obb = result.obb
    return [
        Detection(result.names[int(cls)], float(score), *_box(xyxy), rotated=RotatedBox(*xywhr), index=index)
        for index, (cls, score, xyxy, xywhr) in enumerate(
            zip(obb.cls.tolist(), obb.conf.tolist(), obb.xyxy.tolist(), obb.xywhr.tolist(), strict=True)
        )
    ]


def _keypoints(keypoints: Any) -> list[tuple[Keypoint, ...]]:
    """Per object, its keypoints; a model without visibility scores gives every point score 1."""
    data = keypoints.data.tolist()  # (objects, points, 2 or 3)
    return [tuple(Keypoint(p[0], p[1], p[2] if len(p) > 2 else 1.0) for p in points) for points in data]


def _box(xyxy: list[float]) -> tuple[float, float, float, float]:
    return (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))


def _points(outline: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in outline)


def _class_scores(result: Any) -> list[ClassScore]:
    if result.probs is None:
        return []
    probabilities = result.probs.data.tolist()
    ranked = sorted(enumerate(probabilities), key=lambda item: -item[1])
    return [ClassScore(result.names[index], float(score)) for index, score in ranked]
