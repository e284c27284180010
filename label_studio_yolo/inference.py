"""Run a YOLO model on one image and return typed detections.

Example:
    >>> detections = detect(loaded, image, conf=0.25)          # doctest: +SKIP
    >>> detections[0].class_name, round(detections[0].score, 2)
    ('person', 0.88)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from label_studio_yolo.weights import LoadedWeights


@dataclass(frozen=True)
class Detection:
    """One detected object in pixels of the original image (x0, y0 top-left; x1, y1 bottom-right).

    Segmentation models also give the object's outline (``polygon``, pixel points); detection models leave it empty.
    """

    class_name: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float
    polygon: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ClassScore:
    """A classification model's probability for one class of the whole image."""

    class_name: str
    score: float


@dataclass(frozen=True)
class ModelOutput:
    """What one model says about one image: objects (detect/segment) and/or class probabilities (classify)."""

    detections: list[Detection] = field(default_factory=list)
    classes: list[ClassScore] = field(default_factory=list)


def run_model(
    weights: LoadedWeights, image: Image.Image, conf: float, imgsz: int | None = None, threads: int | None = None
) -> ModelOutput:
    """Run the model on ``image``; objects below ``conf`` are left out, class probabilities are all kept.

    ``conf`` goes to ultralytics so thresholds below its default (0.25) are honoured. ``imgsz`` unset means the
    size the weights were trained at. The model's predictor is not thread-safe: calls are serialised per model.
    """
    options: dict[str, object] = {"conf": conf, "verbose": False}
    if imgsz:
        options["imgsz"] = imgsz
    with weights.lock:
        if threads:
            torch.set_num_threads(threads)  # ultralytics' select_device() resets it to cpu_count - 1
        result = weights.model.predict(image, **options)[0]
    return ModelOutput(detections=_detections(result), classes=_class_scores(result))


def detect(
    weights: LoadedWeights, image: Image.Image, conf: float, imgsz: int | None = None, threads: int | None = None
) -> list[Detection]:
    """The objects found on ``image`` with a score of at least ``conf``."""
    return run_model(weights, image, conf, imgsz, threads).detections


def _detections(result: Any) -> list[Detection]:
    boxes = result.boxes
    if boxes is None:
        return []
    outlines = result.masks.xy if result.masks is not None else [()] * len(boxes)
    names = result.names
    return [
        Detection(names[int(cls)], float(score), xyxy[0], xyxy[1], xyxy[2], xyxy[3], _points(outline))
        for cls, score, xyxy, outline in zip(
            boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), outlines, strict=True
        )
    ]


def _points(outline: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in outline)


def _class_scores(result: Any) -> list[ClassScore]:
    if result.probs is None:
        return []
    probabilities = result.probs.data.tolist()
    ranked = sorted(enumerate(probabilities), key=lambda item: -item[1])
    return [ClassScore(result.names[index], float(score)) for index, score in ranked]
