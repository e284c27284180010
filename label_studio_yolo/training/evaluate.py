"""Score a served model on annotated images, through the project's label mapping: mAP50, or top-1 accuracy.

The old and the new model of a project may have different classes (a base model's ``car`` vs the project's
``Car``), so ultralytics' own ``val()`` (which compares class indices) cannot compare them. We run each model the
way the backend serves it, map classes to labels, and score:

- detect, segment, pose, obb: mAP50 of the objects' axis-aligned boxes (an OBB's bounds) with ultralytics'
  ``ap_per_class``. Masks, keypoints and rotation are not scored: two models that find the same objects score
  the same however well they outline them or place their keypoints.
- classify: top-1 accuracy, the share of images whose best class that a label claims is the image's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from ultralytics.utils.metrics import ap_per_class, box_iou

from label_studio_yolo.inference import detect, run_model
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.weights import LoadedWeights

IOU_THRESHOLD = 0.5
"""A prediction is a true positive when it overlaps an unmatched box of its label by at least this IoU."""

EVALUATION_CONF = 0.001
"""Confidence floor for evaluation (as ultralytics' own validation)."""


METRIC_OF_TASK = {"detect": "map50", "segment": "map50", "pose": "map50", "obb": "map50", "classify": "top1"}
"""The metric that compares an old and a new model of each YOLO task."""


@dataclass(frozen=True)
class LabelledImage:
    """An image and its truth: its objects' boxes in pixels, (label, x0, y0, x1, y1), or its class (classify)."""

    image: Image.Image
    boxes: list[PixelBox]
    label: str | None = None


PixelBox = tuple[str, float, float, float, float]
"""A labelled box in pixels: (label, x0, y0, x1, y1)."""

ScoredBox = tuple[str, float, float, float, float, float]
"""A predicted box in pixels with its score: (label, score, x0, y0, x1, y1)."""


def score(
    task: str, weights: LoadedWeights, labels: LabelMap, samples: list[LabelledImage], label_names: list[str]
) -> float:
    """The :data:`METRIC_OF_TASK` metric of ``weights`` served through ``labels`` on ``samples``."""
    if METRIC_OF_TASK[task] == "top1":
        return top1_accuracy(weights, labels, samples)
    return map50(weights, labels, samples, label_names)


def top1_accuracy(weights: LoadedWeights, labels: LabelMap, samples: list[LabelledImage]) -> float:
    """Share of ``samples`` whose best class that a label claims becomes the sample's label (0.0 without samples).

    As served, minus the threshold: a class no label claims is passed over for the next best.
    """
    correct = 0
    for sample in samples:
        ranked = run_model(weights, sample.image, conf=EVALUATION_CONF).classes  # best first
        best = next((label for item in ranked if (label := labels.label_for(item.class_name)) is not None), None)
        correct += best is not None and best == sample.label
    return correct / len(samples) if samples else 0.0


def map50(weights: LoadedWeights, labels: LabelMap, samples: list[LabelledImage], label_names: list[str]) -> float:
    """mAP50 of ``weights`` served through ``labels`` on ``samples``."""
    predictions = []
    for sample in samples:
        detections = detect(weights, sample.image, conf=EVALUATION_CONF)
        predictions.append(
            [
                (label, d.score, d.x0, d.y0, d.x1, d.y1)
                for d in detections
                if (label := labels.label_for(d.class_name)) is not None
            ]
        )
    return map50_of_predictions(predictions, [sample.boxes for sample in samples], label_names)


def map50_of_predictions(
    predictions: list[list[ScoredBox]], truths: list[list[PixelBox]], label_names: list[str]
) -> float:
    """Mean AP at IoU 0.5 over the labels that occur in ``truths`` (0.0 when nothing is found), per image lists."""
    true_positive, confidence, predicted_class, target_class = [], [], [], []
    for predicted, truth_all in zip(predictions, truths, strict=True):
        truth = [b for b in truth_all if b[0] in label_names]
        target_class += [label_names.index(b[0]) for b in truth]
        matched: set[int] = set()
        for label, score, *xyxy in sorted(predicted, key=lambda p: -p[1]):
            if label not in label_names:
                continue
            true_positive.append(_best_match(torch.tensor([xyxy]), truth, label, matched) is not None)
            confidence.append(score)
            predicted_class.append(label_names.index(label))
    if not target_class or not true_positive:
        return 0.0
    result = ap_per_class(
        np.array(true_positive)[:, None], np.array(confidence), np.array(predicted_class), np.array(target_class)
    )
    return float(np.mean(result[5][:, 0]))  # one row per label present in the truth; never-predicted ones are 0


def _best_match(box: torch.Tensor, truth: list[PixelBox], label: str, matched: set[int]) -> int | None:
    """Index of the unmatched ground-truth box of ``label`` with the highest IoU >= 0.5, marking it matched."""
    best, best_iou = None, IOU_THRESHOLD
    for index, (truth_label, *xyxy) in enumerate(truth):
        if truth_label != label or index in matched:
            continue
        iou = float(box_iou(box, torch.tensor([xyxy]))[0, 0])
        if iou >= best_iou:
            best, best_iou = index, iou
    if best is not None:
        matched.add(best)
    return best
