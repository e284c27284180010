"""``<PolygonLabels>``: object outlines predicted by segmentation models, and outlines they learn from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.geometry import ImageSize, Point, percent_point, pixel_point, rotated_corners
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import AnnotatedRegion, LabelledObject, LearningPlan, ObjectControl, outline_objects


@dataclass(frozen=True)
class PolygonRegion(AnnotatedRegion):
    """An outline: its points in percent of the image."""

    points: tuple[Point, ...]


class PolygonLabelsControl(ObjectControl):
    """Outlines from a segmentation model; an OBB model gives its rotated corners, a detection model box corners."""

    control_type = "PolygonLabels"
    result_type = "polygonlabels"
    learns_for = frozenset({"segment"})

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

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> PolygonRegion:
        points = tuple((float(x), float(y)) for x, y in item["value"]["points"])
        return PolygonRegion(str(item["from_name"]), label, points)

    @classmethod
    def training_objects(
        cls, plan: LearningPlan, regions: Sequence[AnnotatedRegion], size: ImageSize
    ) -> list[LabelledObject]:
        """Each polygon of a label the tag still has, in pixels, clipped to the image."""
        objects = []
        for region in regions:
            if isinstance(region, PolygonRegion) and region.label in plan.source.label_names:
                outline = [pixel_point(x, y, size) for x, y in region.points]
                objects += outline_objects(region.label, [outline], size)
        return objects
