"""A task's objects to learn, in pixels of its loaded image, from the typed regions of its annotation.

Each YOLO task reads the regions it learns from (see :mod:`label_studio_yolo.training.plan`):

- detect: each rectangle's axis-aligned bounds (a rotated rectangle's too);
- obb: each rectangle's four corners (percent -> pixels with the image's size, then rotated);
- segment: each polygon; each blob of a brush mask (:mod:`label_studio_yolo.training.masks`);
- pose: each rectangle with the keypoints that belong to it: the keypoint's ``parentID`` names the rectangle's
  region id, else it is the smallest rectangle containing the point, give or take :data:`CONTAINMENT_TOLERANCE`
  (points in no rectangle are left out). Without
  ``<RectangleLabels>`` in the config all of an annotation's keypoints are one ``object`` bounded by its points and
  a margin of :data:`KEYPOINT_BOX_MARGIN`.

Regions whose label is not in the config any more are left out. Geometry is clipped to the image.

Example:
    >>> objects_for(plan, task.regions, ImageSize(640, 480))              # doctest: +SKIP
    [LabelledObject(label='Car', box=(64.0, 96.0, 256.0, 288.0), outline=(), keypoints=())]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from label_studio_yolo.geometry import ImageSize, pixel_point
from label_studio_yolo.training.annotations import (
    AnnotationError,
    BrushRegion,
    ChoiceRegion,
    KeypointRegion,
    Point,
    PolygonRegion,
    RectangleRegion,
    Region,
)
from label_studio_yolo.training.masks import brush_outlines
from label_studio_yolo.training.plan import KEYPOINT_OBJECT_CLASS, TrainingPlan

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels."""

KEYPOINT_BOX_MARGIN = 0.1
"""Without rectangles, an object's box is its keypoints' bounds grown by this share of their larger side ..."""

MIN_KEYPOINT_BOX_MARGIN = 4.0
"""... and by at least this many pixels (one keypoint still makes a box)."""

CONTAINMENT_TOLERANCE = 1.0
"""Pixels a keypoint may lie outside a rectangle and still be in it (people click on the rectangle's edge)."""


@dataclass(frozen=True)
class LabelledObject:
    """One object in pixels: its label, axis-aligned bounds, outline (segment: polygon; obb: four corners) and, for
    pose, its keypoints by keypoint index (None where not annotated)."""

    label: str
    box: Box
    outline: tuple[Point, ...] = ()
    keypoints: tuple[Point | None, ...] = ()


def objects_for(plan: TrainingPlan, regions: Sequence[Region], size: ImageSize) -> list[LabelledObject]:
    """The objects of ``plan.task`` in a task's ``regions`` (an empty list for classification).

    Raises:
        AnnotationError: a brush mask does not fit its image.
    """
    known = [region for region in regions if region.label in plan.class_names or isinstance(region, KeypointRegion)]
    return OBJECTS_OF_TASK[plan.task](plan, known, size)


def image_class(plan: TrainingPlan, regions: Sequence[Region]) -> str:
    """The class of the whole image: the first choice.

    Raises:
        AnnotationError: there is no choice, or the choice is no longer in the config.
    """
    choice = next((region for region in regions if isinstance(region, ChoiceRegion)), None)
    if choice is None:
        raise AnnotationError(f"the annotation has no choice of {plan.describe()}")
    if choice.label not in plan.class_names:
        raise AnnotationError(f"choice {choice.label!r} is not a <Choice> of {plan.describe()} any more")
    return choice.label


def _clip(point: Point, size: ImageSize) -> Point:
    return (min(max(point[0], 0.0), float(size.width)), min(max(point[1], 0.0), float(size.height)))


def _bounds(points: Iterable[Point], size: ImageSize, margin: float = 0.0) -> Box:
    xs, ys = zip(*points, strict=True)
    x0, y0 = _clip((min(xs) - margin, min(ys) - margin), size)
    x1, y1 = _clip((max(xs) + margin, max(ys) + margin), size)
    return (x0, y0, x1, y1)


def _rectangles(regions: Sequence[Region]) -> list[RectangleRegion]:
    return [region for region in regions if isinstance(region, RectangleRegion)]


def _detect(plan: TrainingPlan, regions: Sequence[Region], size: ImageSize) -> list[LabelledObject]:
    return [LabelledObject(r.label, _bounds(r.corners(size), size)) for r in _rectangles(regions)]


def _obb(plan: TrainingPlan, regions: Sequence[Region], size: ImageSize) -> list[LabelledObject]:
    objects = []
    for rectangle in _rectangles(regions):
        corners = tuple(_clip(point, size) for point in rectangle.corners(size))
        objects.append(LabelledObject(rectangle.label, _bounds(corners, size), corners))
    return objects


def _segment(plan: TrainingPlan, regions: Sequence[Region], size: ImageSize) -> list[LabelledObject]:
    objects = []
    for region in regions:
        if isinstance(region, PolygonRegion):
            outlines = [[pixel_point(x, y, size) for x, y in region.points]]
        elif isinstance(region, BrushRegion):
            outlines = _brush_outlines(region, size)
        else:
            continue
        for outline in outlines:
            if len(outline) >= 3:
                clipped = tuple(_clip(point, size) for point in outline)
                objects.append(LabelledObject(region.label, _bounds(clipped, size), clipped))
    return objects


def _brush_outlines(region: BrushRegion, size: ImageSize) -> list[list[Point]]:
    """The brush's polygons in pixels of the loaded image (scaled when it was painted on another size)."""
    painted = region.size or size
    try:
        outlines = brush_outlines(region.rle, painted)
    except ValueError as error:
        raise AnnotationError(f"brush region {region.label!r} of {region.from_name!r}: {error}") from error
    sx, sy = size.width / painted.width, size.height / painted.height
    return [[(x * sx, y * sy) for x, y in outline] for outline in outlines]


def _pose(plan: TrainingPlan, regions: Sequence[Region], size: ImageSize) -> list[LabelledObject]:
    index_of = {point.label: point.index for point in plan.source.keypoints}
    points = [r for r in regions if isinstance(r, KeypointRegion) and r.label in index_of]
    if plan.boxes is None:
        return [_keypoint_object(plan, points, index_of, size)] if points else []
    rectangles = _rectangles(regions)
    boxes = [_bounds(r.corners(size), size) for r in rectangles]
    slots: list[list[Point | None]] = [[None] * plan.keypoint_count for _ in rectangles]
    for point in points:
        xy = _clip(pixel_point(point.x, point.y, size), size)
        owner = _owner(point, xy, rectangles, boxes)
        if owner is not None and slots[owner][index_of[point.label]] is None:
            slots[owner][index_of[point.label]] = xy
    return [
        LabelledObject(r.label, box, keypoints=tuple(slot))
        for r, box, slot in zip(rectangles, boxes, slots, strict=True)
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
    plan: TrainingPlan, points: list[KeypointRegion], index_of: dict[str, int], size: ImageSize
) -> LabelledObject:
    """All of an annotation's keypoints as one ``object`` (the config has no rectangles)."""
    slots: list[Point | None] = [None] * plan.keypoint_count
    for point in points:
        if slots[index_of[point.label]] is None:
            slots[index_of[point.label]] = _clip(pixel_point(point.x, point.y, size), size)
    placed = [xy for xy in slots if xy is not None]
    xs, ys = [x for x, _ in placed], [y for _, y in placed]
    margin = max(KEYPOINT_BOX_MARGIN * max(max(xs) - min(xs), max(ys) - min(ys)), MIN_KEYPOINT_BOX_MARGIN)
    return LabelledObject(KEYPOINT_OBJECT_CLASS, _bounds(placed, size, margin), keypoints=tuple(slots))


OBJECTS_OF_TASK: dict[str, Callable[[TrainingPlan, Sequence[Region], ImageSize], list[LabelledObject]]] = {
    "detect": _detect,
    "segment": _segment,
    "classify": lambda plan, regions, size: [],
    "pose": _pose,
    "obb": _obb,
}
"""YOLO task -> the function that finds its objects in a task's regions."""
