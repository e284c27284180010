"""``<KeyPointLabels>``: the keypoints of each object a pose model finds.

Each ``<Label>`` takes one of the model's keypoints (see :func:`label_studio_yolo.label_config.keypoint_labels`):
``<Label value="Nose" model_index="0" predicted_values="person"/>`` or ``<Label value="Nose" predicted_values="0"/>``.
An object is kept when its score reaches ``model_score_threshold``; a point is kept when the model's visibility
score for it reaches ``model_point_threshold`` (default :data:`DEFAULT_POINT_THRESHOLD`). When a
``<RectangleLabels>`` on the same image uses the same weights, its box becomes the keypoints' parent region.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from label_studio_yolo.geometry import percent_point
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import ControlSpec, score_attribute
from label_studio_yolo.tags.base import Control, build_region, object_region_id, register_control

POINT_THRESHOLD_ATTR = "model_point_threshold"

"""``<KeyPointLabels>`` attribute: the minimum visibility score (0-1) of a predicted keypoint."""

DEFAULT_POINT_THRESHOLD = 0.5
"""Visibility score below which a keypoint is left out (ultralytics draws keypoints above the same value)."""


@register_control
class KeyPointLabelsControl(Control):
    """One keypoint region per labelled keypoint of each detected object."""

    control_type = "KeyPointLabels"
    model_tasks = frozenset({"pose"})

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
        task = str(getattr(self.weights.model, "task", "detect"))
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
