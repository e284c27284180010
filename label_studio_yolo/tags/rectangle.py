"""``<RectangleLabels>``: boxes from a detection, segmentation or pose model; rotated boxes from an OBB model."""

from __future__ import annotations

from typing import Any

from label_studio_yolo.geometry import rectangle_percent, rotated_rectangle_percent
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import ObjectControl, register_control


@register_control
class RectangleLabelsControl(ObjectControl):
    """Axis-aligned boxes, or with an OBB model (``yolo11n-obb.pt``) boxes with Label Studio's ``rotation``."""

    control_type = "RectangleLabels"

    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any]:
        if detection.rotated is not None:
            box = detection.rotated
            return rotated_rectangle_percent(box.cx, box.cy, box.width, box.height, box.angle, output.size)
        return rectangle_percent(detection.x0, detection.y0, detection.x1, detection.y1, output.size)
