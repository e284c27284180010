"""Score a served model on annotated images per label, through the project's label mapping: AP50, or accuracy.

The old and the new model may have different classes, so ultralytics' ``val()`` (which compares class indices)
cannot compare them: each model runs as served, its classes mapped to labels, and every label in the truth is
scored. detect and obb: AP at IoU 0.5 of the objects' axis-aligned boxes (rotation is not scored); segment: of their
masks; pose: at keypoint similarity (OKS, as ultralytics' pose validation) 0.5. classify: per label, the share of
its images whose best claimed class is that label.

Example:
    >>> scores = score_per_label("detect", weights, labels, samples, ["Person", "Cup"])   # doctest: +SKIP
    >>> scores["Person"]
    LabelScore(value=0.91, count=12)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from ultralytics.utils.metrics import OKS_SIGMA, ap_per_class, box_iou, kpt_iou, mask_iou

from label_studio_yolo.inference.outputs import Detection, detect, run_model
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.tasks import TASKS

IOU_THRESHOLD = 0.5
"""A prediction is a true positive when it overlaps an unmatched box of its label by at least this IoU."""

EVALUATION_CONF = 0.001
"""Confidence floor for evaluation (as ultralytics' own validation)."""


@dataclass(frozen=True)
class LabelledImage:
    """An image and its truth: its labelled objects (their boxes in pixels), or its class (classify)."""

    image: Image.Image
    objects: list[LabelledObject]
    label: str | None = None


@dataclass(frozen=True)
class LabelScore:
    """One label's metric and how many objects (classify: images) of it the truth holds."""

    value: float
    count: int


ScoredBox = tuple[str, float, float, float, float, float]
"""A predicted box in pixels with its score: (label, score, x0, y0, x1, y1)."""

ScoredShape = tuple[str, float, float, float, float, float, Detection]
"""A predicted box with the detection it came from, for its mask or keypoints."""

Overlap = Callable[[ScoredBox | ScoredShape, LabelledObject], float]
"""How well a prediction finds a truth object: IoU of boxes or masks, or keypoint similarity."""

KEYPOINT_AREA = 0.53
"""Share of a truth box that is the object's area in keypoint similarity (as ultralytics' pose validation)."""


def score_per_label(
    task: str,
    weights: LoadedWeights,
    labels: LabelMap,
    samples: list[LabelledImage],
    label_names: list[str],
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, LabelScore]:
    """The task's metric (:data:`~label_studio_yolo.training.tasks.TASKS`) of ``weights`` served through
    ``labels``, for each label in the truth.

    ``thresholds``: per label, objects scoring less are not predicted (the gate passes those the project serves
    at); without, :data:`EVALUATION_CONF`.
    """
    if TASKS[task].metric == "accuracy":
        return accuracy_per_label(weights, labels, samples)
    thresholds, overlap = thresholds or {}, OVERLAPS[TASKS[task].matched_by]
    predictions = [_predicted(weights, labels, sample.image, thresholds) for sample in samples]
    return ap50_per_label(predictions, [sample.objects for sample in samples], label_names, overlap)


def accuracy_per_label(weights: LoadedWeights, labels: LabelMap, samples: list[LabelledImage]) -> dict[str, LabelScore]:
    """Per label, the share of its samples whose best class that a label claims is that label.

    As served, minus the threshold: a class no label claims is passed over for the next best.
    """
    hits: dict[str, list[bool]] = {}
    for sample in samples:
        if sample.label is None:
            continue
        ranked = run_model(weights, sample.image, conf=EVALUATION_CONF).classes  # best first
        best = next((label for item in ranked if (label := labels.label_for(item.class_name)) is not None), None)
        hits.setdefault(sample.label, []).append(best == sample.label)
    return {label: LabelScore(sum(found) / len(found), len(found)) for label, found in hits.items()}


def _predicted(
    weights: LoadedWeights, labels: LabelMap, image: Image.Image, thresholds: Mapping[str, float]
) -> list[ScoredShape]:
    return [
        (label, d.score, d.x0, d.y0, d.x1, d.y1, d)
        for d in detect(weights, image, conf=min(thresholds.values(), default=EVALUATION_CONF))
        if (label := labels.label_for(d.class_name)) is not None and d.score >= thresholds.get(label, EVALUATION_CONF)
    ]


def ap50_per_label(
    predictions: Sequence[Sequence[ScoredBox | ScoredShape]],
    truths: list[list[LabelledObject]],
    label_names: list[str],
    overlap: Overlap | None = None,
) -> dict[str, LabelScore]:
    """AP at 0.5 ``overlap`` (default: box IoU) of each of ``label_names`` that occurs in ``truths`` (per-image lists
    of predictions)."""
    true_positive, confidence, predicted_class, target_class = [], [], [], []
    for predicted, truth_all in zip(predictions, truths, strict=True):
        truth = [item for item in truth_all if item.label in label_names]
        target_class += [label_names.index(item.label) for item in truth]
        matched: set[int] = set()
        for prediction in sorted(predicted, key=lambda p: -p[1]):
            label, score = prediction[0], prediction[1]
            if label not in label_names:
                continue
            found = _best_match(prediction, truth, matched, overlap or box_overlap)
            true_positive.append(found is not None)
            confidence.append(score)
            predicted_class.append(label_names.index(label))
    classes, class_counts = np.unique(target_class, return_counts=True)
    counts = {label_names[index]: count for index, count in zip(classes, class_counts, strict=True)}
    if not true_positive:
        return {label: LabelScore(0.0, int(count)) for label, count in counts.items()}
    result = ap_per_class(
        np.array(true_positive)[:, None], np.array(confidence), np.array(predicted_class), np.array(target_class)
    )
    # One row per label present in the truth (never-predicted ones score 0); result[6] names each row's class.
    return {
        label_names[int(index)]: LabelScore(float(ap[0]), int(counts[label_names[int(index)]]))
        for ap, index in zip(result[5], result[6], strict=True)
    }


def mean_score(scores: dict[str, LabelScore]) -> float:
    """The mean of the labels' metrics (mAP50, or mean per-label accuracy); 0.0 without labels."""
    return float(np.mean([score.value for score in scores.values()])) if scores else 0.0


def map50_of_predictions(
    predictions: list[list[ScoredBox]], truths: list[list[LabelledObject]], label_names: list[str]
) -> float:
    """Mean AP at IoU 0.5 over the labels that occur in ``truths`` (0.0 when nothing is found), per image lists."""
    return mean_score(ap50_per_label(predictions, truths, label_names))


def _best_match(
    prediction: ScoredBox | ScoredShape, truth: list[LabelledObject], matched: set[int], overlap: Overlap
) -> int | None:
    """Index of the unmatched truth object of the prediction's label it overlaps most, at least 0.5, marking it
    matched."""
    best, best_overlap = None, IOU_THRESHOLD
    for index, item in enumerate(truth):
        if item.label != prediction[0] or index in matched:
            continue
        value = overlap(prediction, item)
        if value >= best_overlap:
            best, best_overlap = index, value
    if best is not None:
        matched.add(best)
    return best


def box_overlap(prediction: ScoredBox | ScoredShape, item: LabelledObject) -> float:
    """IoU of the prediction's box and the object's."""
    return float(box_iou(torch.tensor([prediction[2:6]]), torch.tensor([item.box]))[0, 0])


def mask_overlap(prediction: ScoredBox | ScoredShape, item: LabelledObject) -> float:
    """IoU of the predicted outline's mask and the object's (drawn on the pixels around both); boxes without them."""
    polygon = prediction[6].polygon if len(prediction) > 6 else ()  # type: ignore[misc]
    if len(polygon) < 3 or len(item.outline) < 3:
        return box_overlap(prediction, item)
    points = [*polygon, *item.outline]
    left, top = min(x for x, _ in points), min(y for _, y in points)
    size = (math.ceil(max(x for x, _ in points) - left) + 1, math.ceil(max(y for _, y in points) - top) + 1)
    masks = []
    for outline in (polygon, item.outline):
        canvas = Image.new("1", size)
        ImageDraw.Draw(canvas).polygon([(x - left, y - top) for x, y in outline], fill=1)
        masks.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32)).reshape(1, -1))
    return float(mask_iou(masks[0], masks[1])[0, 0])


def keypoint_overlap(prediction: ScoredBox | ScoredShape, item: LabelledObject) -> float:
    """Keypoint similarity (OKS) of the predicted keypoints to the object's annotated ones, with ultralytics' sigmas
    (COCO's for 17 keypoints, else equal); boxes for an object without annotated keypoints."""
    predicted = prediction[6].keypoints if len(prediction) > 6 else ()  # type: ignore[misc]
    if not predicted or not any(item.keypoints):
        return box_overlap(prediction, item)
    count = max(len(predicted), len(item.keypoints))
    truth = torch.zeros(1, count, 3)
    for index, point in enumerate(item.keypoints):
        if point is not None:
            truth[0, index] = torch.tensor([point[0], point[1], 1.0])
    found = torch.zeros(1, count, 3)
    for index, keypoint in enumerate(predicted):
        found[0, index] = torch.tensor([keypoint.x, keypoint.y, keypoint.score])
    x0, y0, x1, y1 = item.box
    area = torch.tensor([(x1 - x0) * (y1 - y0) * KEYPOINT_AREA])
    sigma = list(OKS_SIGMA) if count == len(OKS_SIGMA) else [1.0 / count] * count
    return float(kpt_iou(truth, found, area, sigma)[0, 0])


OVERLAPS: dict[str, Overlap] = {"box": box_overlap, "mask": mask_overlap, "keypoints": keypoint_overlap}
"""Each :attr:`~label_studio_yolo.training.tasks.TrainedTask.matched_by`'s overlap."""
