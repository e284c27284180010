"""``<KeyPointLabels>``: the keypoints of each object a pose model finds.

Each ``<Label>`` takes one of the model's keypoints (see :func:`label_studio_yolo.label_config.keypoint_labels`):
``<Label value="Nose" model_index="0" predicted_values="person"/>`` or ``<Label value="Nose" predicted_values="0"/>``.
An object is kept when its score reaches ``model_score_threshold``; a point is kept when the model's visibility
score for it reaches ``model_point_threshold`` (default :data:`DEFAULT_POINT_THRESHOLD`). When a
``<RectangleLabels>`` on the same image uses the same weights, its box becomes the keypoints' parent region.

Learning, a pose model's objects are the rectangles with the keypoints that belong to them: a keypoint's
``parentID`` names the rectangle's region id, else it belongs to the smallest rectangle containing it, give or take
:data:`CONTAINMENT_TOLERANCE` (points in no rectangle are left out). Without ``<RectangleLabels>`` all of an
annotation's keypoints are one :data:`KEYPOINT_OBJECT_CLASS` object, bounded by its points and a margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.geometry import Box, ImageSize, Point, bounds, clip_point, percent_point, pixel_point
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import ControlSpec, score_attribute
from label_studio_yolo.tags.base import (
    AnnotatedRegion,
    Control,
    LabelledObject,
    LearningPlan,
    build_region,
    object_region_id,
)
from label_studio_yolo.tags.rectangle import RectangleRegion, labelled_rectangles

POINT_THRESHOLD_ATTR = "model_point_threshold"
"""``<KeyPointLabels>`` attribute: the minimum visibility score (0-1) of a predicted keypoint."""

DEFAULT_POINT_THRESHOLD = 0.5
"""Visibility score below which a keypoint is left out (ultralytics draws keypoints above the same value)."""

KEYPOINT_OBJECT_CLASS = "object"
"""The one class of a pose model trained from a config without ``<RectangleLabels>``."""

KEYPOINT_BOX_MARGIN = 0.1
"""Without rectangles, an object's box is its keypoints' bounds grown by this share of their larger side ..."""

MIN_KEYPOINT_BOX_MARGIN = 4.0
"""... and by at least this many pixels (one keypoint still makes a box)."""

CONTAINMENT_TOLERANCE = 1.0
"""Pixels a keypoint may lie outside a rectangle and still be in it (people click on the rectangle's edge)."""


@dataclass(frozen=True)
class KeypointRegion(AnnotatedRegion):
    """A keypoint in percent of the image, and the id of the region it belongs to (``parentID``), if any."""

    x: float
    y: float
    parent_id: str | None = None


class KeyPointLabelsControl(Control):
    """One keypoint region per labelled keypoint of each detected object."""

    control_type = "KeyPointLabels"
    model_tasks = frozenset({"pose"})
    result_type = "keypointlabels"
    learns_for = frozenset({"pose"})

    def __init__(self, spec: ControlSpec, weights: LoadedWeights) -> None:
        super().__init__(spec, weights)
        self.point_threshold = score_attribute(spec.tag, POINT_THRESHOLD_ATTR, DEFAULT_POINT_THRESHOLD)
        self.parent_from_name: str | None = None

    def regions(self, output: ModelOutput) -> list[dict[str, Any]]:
        regions = []
        for detection in output.detections:
            if detection.score >= self.spec.threshold:
                regions.extend(self._object_points(detection, output, self.point_threshold))
        return regions

    def _object_points(self, detection: Detection, output: ModelOutput, threshold: float) -> list[dict[str, Any]]:
        regions = []
        for point_label in self.spec.keypoints:
            if point_label.index >= len(detection.keypoints) or not point_label.accepts(detection.class_name):
                continue
            point = detection.keypoints[point_label.index]
            if point.score < threshold:
                continue
            x, y = percent_point(point.x, point.y, output.size)
            region = build_region(self.spec, point_label.label, {"x": x, "y": y}, detection.score, output.size)
            if self.parent_from_name is not None:
                region["parentID"] = object_region_id(self.parent_from_name, detection)
            regions.append(region)
        return regions

    def link(self, controls: Sequence[Control]) -> None:
        """Take as parent the boxes of a ``<RectangleLabels>`` on the same image filled by the same weights."""
        for other in controls:
            same_source = other.spec.value_key == self.spec.value_key and other.weights is self.weights
            if other.spec.control_type == "RectangleLabels" and same_source:
                self.parent_from_name = other.spec.from_name
                return

    def unusable_reason(self) -> str | None:
        task = self.weights.task
        if task not in self.model_tasks:
            return super().unusable_reason()
        count = self.weights.keypoints
        class_names = list(self.weights.class_names.values())
        usable = [
            point
            for point in self.spec.keypoints
            if point.index < count and any(point.accepts(name) for name in class_names)
        ]
        if usable:
            return None
        return (
            f'No <Label> of <KeyPointLabels name="{self.spec.from_name}"> takes one of the {count} keypoints of '
            f"{self.weights.path.name} (classes: {', '.join(sorted(class_names))}). Give each label its keypoint, "
            f'e.g. <Label value="{(self.spec.label_names or ("Nose",))[0]}" model_index="0" '
            f'predicted_values="{class_names[0] if class_names else "person"}"/>.'
        )

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> KeypointRegion:
        value = item["value"]
        parent = str(item["parentID"]) if item.get("parentID") else None
        return KeypointRegion(str(item["from_name"]), label, float(value["x"]), float(value["y"]), parent)

    @classmethod
    def training_objects(
        cls, plan: LearningPlan, regions: Sequence[AnnotatedRegion], size: ImageSize
    ) -> list[LabelledObject]:
        """The rectangles of ``plan.boxes`` with their keypoints, or all keypoints as one object without them."""
        index_of = {point.label: point.index for point in plan.source.keypoints}
        points = [r for r in regions if isinstance(r, KeypointRegion) and r.label in index_of]
        count = max(index_of.values(), default=-1) + 1
        if plan.boxes is None:
            return [_keypoint_object(points, index_of, count, size)] if points else []
        rectangles = labelled_rectangles(regions, plan.boxes.label_names)
        boxes_px = [rectangle.bounds(size) for rectangle in rectangles]
        slots: list[list[Point | None]] = [[None] * count for _ in rectangles]
        for point in points:
            xy = clip_point(pixel_point(point.x, point.y, size), size)
            owner = _owner(point, xy, rectangles, boxes_px)
            if owner is not None and slots[owner][index_of[point.label]] is None:
                slots[owner][index_of[point.label]] = xy
        return [
            LabelledObject(r.label, box, keypoints=tuple(slot))
            for r, box, slot in zip(rectangles, boxes_px, slots, strict=True)
        ]


def _owner(point: KeypointRegion, xy: Point, rectangles: list[RectangleRegion], boxes: list[Box]) -> int | None:
    """The rectangle a keypoint belongs to: its ``parentID``, else the smallest rectangle containing it."""
    for index, rectangle in enumerate(rectangles):
        if point.parent_id is not None and rectangle.region_id == point.parent_id:
            return index
    tolerance, (x, y) = CONTAINMENT_TOLERANCE, xy
    containing = [
        i
        for i, (x0, y0, x1, y1) in enumerate(boxes)
        if x0 - tolerance <= x <= x1 + tolerance and y0 - tolerance <= y <= y1 + tolerance
    ]
    return min(containing, key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]), default=None)


def _keypoint_object(
    points: list[KeypointRegion], index_of: dict[str, int], count: int, size: ImageSize
) -> LabelledObject:
    """All of an annotation's keypoints as one :data:`KEYPOINT_OBJECT_CLASS` object (the config has no rectangles)."""
    slots: list[Point | None] = [None] * count
    for point in points:
        if slots[index_of[point.label]] is None:
            slots[index_of[point.label]] = clip_point(pixel_point(point.x, point.y, size), size)
    placed = [xy for xy in slots if xy is not None]
    xs, ys = [x for x, _ in placed], [y for _, y in placed]
    margin = max(KEYPOINT_BOX_MARGIN * max(max(xs) - min(xs), max(ys) - min(ys)), MIN_KEYPOINT_BOX_MARGIN)
    return LabelledObject(KEYPOINT_OBJECT_CLASS, bounds(placed, size, margin), keypoints=tuple(slots))
