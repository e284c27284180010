"""``<RectangleLabels>``: boxes (rotated ones from an OBB model) predicted, and boxes learnt by detect and OBB models.

Predicting: axis-aligned boxes from a detection, segmentation or pose model; an OBB model's boxes with Label
Studio's ``rotation``. Learning: a detect model learns each rectangle's axis-aligned bounds (a rotated rectangle's
too), an OBB model its four corners; pose models read the rectangles as the objects their keypoints belong to
(:mod:`label_studio_yolo.tags.keypoints`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.geometry import (
    Box,
    ImageSize,
    Point,
    bounds,
    clip_point,
    rectangle_corners,
    rectangle_percent,
    rotated_rectangle_percent,
)
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import AnnotatedRegion, LabelledObject, LearningPlan, ObjectControl


@dataclass(frozen=True)
class RectangleRegion(AnnotatedRegion):
    """A box: top-left corner ``x``, ``y`` and ``width``, ``height`` in percent of the image; ``rotation`` in degrees
    clockwise about that corner; the region's id (keypoints name it as their ``parentID``)."""

    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    region_id: str | None = None

    def corners(self, size: ImageSize) -> list[Point]:
        """The box's corners in pixels of an image of ``size``."""
        return rectangle_corners(self.x, self.y, self.width, self.height, self.rotation, size)

    def bounds(self, size: ImageSize) -> Box:
        """The axis-aligned bounds in pixels, clipped to the image."""
        return bounds(self.corners(size), size)


class RectangleLabelsControl(ObjectControl):
    """Axis-aligned boxes, or with an OBB model (``yolo11n-obb.pt``) boxes with Label Studio's ``rotation``."""

    control_type = "RectangleLabels"
    result_type = "rectanglelabels"
    learns_for = frozenset({"detect", "obb"})

    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any]:
        if detection.rotated is not None:
            box = detection.rotated
            return rotated_rectangle_percent(box.cx, box.cy, box.width, box.height, box.angle, output.size)
        return rectangle_percent(detection.x0, detection.y0, detection.x1, detection.y1, output.size)

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> RectangleRegion:
        value = item["value"]
        x, y, width, height = (float(value[key]) for key in ("x", "y", "width", "height"))
        region_id = str(item["id"]) if item.get("id") is not None else None
        rotation = float(value.get("rotation") or 0)
        return RectangleRegion(str(item["from_name"]), label, x, y, width, height, rotation, region_id)

    @classmethod
    def training_objects(
        cls, plan: LearningPlan, regions: Sequence[AnnotatedRegion], size: ImageSize
    ) -> list[LabelledObject]:
        """detect: each rectangle's bounds; obb: its corners (percent -> pixels with the image's size, then rotated)."""
        rectangles = labelled_rectangles(regions, plan.source.label_names)
        if plan.task != "obb":
            return [LabelledObject(rectangle.label, rectangle.bounds(size)) for rectangle in rectangles]
        objects = []
        for rectangle in rectangles:
            corners = tuple(clip_point(point, size) for point in rectangle.corners(size))
            objects.append(LabelledObject(rectangle.label, bounds(corners, size), corners))
        return objects


def labelled_rectangles(regions: Sequence[AnnotatedRegion], labels: Sequence[str]) -> list[RectangleRegion]:
    """The rectangles among ``regions`` whose label is one of ``labels``."""
    return [region for region in regions if isinstance(region, RectangleRegion) and region.label in labels]
