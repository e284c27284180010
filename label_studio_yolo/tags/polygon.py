"""``<PolygonLabels>``: object outlines from a segmentation model."""

from __future__ import annotations

from typing import Any

from label_studio_yolo.geometry import percent_point, rotated_corners
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import ObjectControl, register_control


@register_control
class PolygonLabelsControl(ObjectControl):
    """Outlines from a segmentation model; an OBB model gives its rotated corners, a detection model box corners."""

    control_type = "PolygonLabels"

    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any] | None:
        outline: list[tuple[float, float]] | tuple[tuple[float, float], ...]
        if detection.polygon:
            outline = detection.polygon
        elif detection.rotated is not None:
            box = detection.rotated
            outline = rotated_corners(box.cx, box.cy, box.width, box.height, box.angle)
        else:
            outline = [(detection.x0, detection.y0), (detection.x1, detection.y0)]
            outline += [(detection.x1, detection.y1), (detection.x0, detection.y1)]
        if len(outline) < 3:
            return None  # a mask too small to outline
        return {"points": [percent_point(x, y, output.size) for x, y in outline]}
