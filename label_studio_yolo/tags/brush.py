"""``<BrushLabels>``: segmentation masks as Label Studio brush strokes, predicted and learnt.

Predicting: each object's mask, scaled to the original image, as the RLE label-studio-sdk encodes. Learning: Label
Studio stores a brush region as the RLE of an RGBA image of the size it was painted on (a pixel is painted where its
alpha is not 0). Each separate blob becomes its own polygon (its own object in the dataset), outlined by OpenCV
through the centres of its edge pixels; holes are filled, as YOLO polygons have none; blobs smaller than
:data:`MIN_BLOB_PIXELS` are brush noise and left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from label_studio_yolo.errors import AnnotationError
from label_studio_yolo.geometry import ImageSize, Point
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import AnnotatedRegion, LabelledObject, LearningPlan, ObjectControl, outline_objects

MIN_BLOB_PIXELS = 4
"""Painted blobs with fewer pixels than this are not outlined."""


@dataclass(frozen=True)
class BrushRegion(AnnotatedRegion):
    """A brush mask: Label Studio's RLE of an RGBA image and the size it was painted on (None when not stored)."""

    rle: tuple[int, ...]
    size: ImageSize | None


class BrushLabelsControl(ObjectControl):
    """One brush region per object, its mask scaled to the original image."""

    control_type = "BrushLabels"
    model_tasks = frozenset({"segment"})
    result_type = "brushlabels"
    learns_for = frozenset({"segment"})

    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any] | None:
        if output.masks is None:
            return None
        mask = output.masks.full_size(detection.index)
        if not mask.any():
            return None
        # Imported here: label_studio_sdk.converter pulls in nltk and scipy.stats, 75 MB in every worker otherwise.
        from label_studio_sdk.converter.brush import mask2rle

        rle = mask2rle(mask.astype(np.uint8) * 255)  # type: ignore[no-untyped-call]
        return {"format": "rle", "rle": rle}

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> BrushRegion:
        width, height = item.get("original_width"), item.get("original_height")
        size = ImageSize(int(width), int(height)) if width and height else None
        return BrushRegion(str(item["from_name"]), label, tuple(int(v) for v in item["value"]["rle"]), size)

    @classmethod
    def training_objects(
        cls, plan: LearningPlan, regions: Sequence[AnnotatedRegion], size: ImageSize
    ) -> list[LabelledObject]:
        """Each blob of each brush region of a label the tag still has, as a polygon in pixels of the loaded image
        (scaled when it was painted on another size).

        Raises:
            AnnotationError: a brush mask does not fit the size it was painted on.
        """
        objects = []
        for region in regions:
            if isinstance(region, BrushRegion) and region.label in plan.source.label_names:
                objects += outline_objects(region.label, _outlines_on(region, size), size)
        return objects


def _outlines_on(region: BrushRegion, size: ImageSize) -> list[list[Point]]:
    painted = region.size or size
    try:
        outlines = mask_outlines(decode_brush(region.rle, painted))
    except ValueError as error:
        raise AnnotationError(f"brush region {region.label!r} of {region.from_name!r}: {error}") from error
    sx, sy = size.width / painted.width, size.height / painted.height
    return [[(x * sx, y * sy) for x, y in outline] for outline in outlines]


def decode_brush(rle: Sequence[int], size: ImageSize) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The painted pixels of a brush RLE as a boolean array of ``size`` (height x width).

    Raises:
        ValueError: the RLE does not hold an RGBA image of ``size``.
    """
    from label_studio_sdk.converter.brush import decode_rle

    flat = decode_rle(list(rle))  # type: ignore[no-untyped-call]
    expected = size.width * size.height * 4
    if flat.size != expected:
        raise ValueError(
            f"brush RLE holds {flat.size} values, not the {expected} of a {size.width}x{size.height} RGBA image"
        )
    return np.asarray(flat.reshape(size.height, size.width, 4)[:, :, 3] > 0)


def mask_outlines(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[list[Point]]:
    """One polygon (pixel points, at least 3) per blob of ``mask`` with at least :data:`MIN_BLOB_PIXELS` pixels."""
    import cv2

    count, blobs, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    kept = [index for index in range(1, count) if stats[index, cv2.CC_STAT_AREA] >= MIN_BLOB_PIXELS]
    painted = np.isin(blobs, kept).astype(np.uint8)
    contours, _ = cv2.findContours(painted, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[(float(x), float(y)) for x, y in c.reshape(-1, 2)] for c in contours if len(c) >= 3]
