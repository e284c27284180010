"""Run a YOLO model on one image and return typed detections.

Example:
    >>> detections = detect(loaded, image, conf=0.25)          # doctest: +SKIP
    >>> detections[0].class_name, round(detections[0].score, 2)
    ('person', 0.88)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from label_studio_yolo.weights import LoadedWeights


@dataclass(frozen=True)
class Detection:
    """One detected box in pixels of the original image (x0, y0 top-left; x1, y1 bottom-right)."""

    class_name: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float


def detect(
    weights: LoadedWeights, image: Image.Image, conf: float, imgsz: int | None = None, threads: int | None = None
) -> list[Detection]:
    """Detections with a score of at least ``conf`` on ``image``.

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
    boxes = result.boxes
    if boxes is None:
        return []
    names = result.names
    return [
        Detection(names[int(cls)], float(score), *(float(v) for v in xyxy))
        for cls, score, xyxy in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
    ]
