"""Brush masks (Label Studio RLE) as polygons that a YOLO segmentation dataset can hold.

Label Studio stores a brush region as the RLE of an RGBA image of the size it was painted on (label-studio-sdk's
``decode_rle``); a pixel is painted where its alpha is not 0. A region may hold several separate blobs: each
becomes its own polygon (its own object in the dataset), outlined by OpenCV through the centres of its edge pixels
(so an outline is up to half a pixel inside the painted area); holes are filled, as YOLO polygons have none. Blobs
smaller than :data:`MIN_BLOB_PIXELS` are brush noise and left out.

Example:
    >>> brush_outlines(region.rle, ImageSize(640, 480))                # doctest: +SKIP
    [[(12.0, 30.0), (12.0, 85.0), (70.0, 85.0), (70.0, 30.0)]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from label_studio_yolo.geometry import ImageSize

MIN_BLOB_PIXELS = 4
"""Painted blobs with fewer pixels than this are not outlined."""


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


def mask_outlines(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[list[tuple[float, float]]]:
    """One polygon (pixel points, at least 3) per blob of ``mask`` with at least :data:`MIN_BLOB_PIXELS` pixels."""
    import cv2

    count, blobs, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    kept = [index for index in range(1, count) if stats[index, cv2.CC_STAT_AREA] >= MIN_BLOB_PIXELS]
    painted = np.isin(blobs, kept).astype(np.uint8)
    contours, _ = cv2.findContours(painted, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[(float(x), float(y)) for x, y in c.reshape(-1, 2)] for c in contours if len(c) >= 3]


def brush_outlines(rle: Sequence[int], size: ImageSize) -> list[list[tuple[float, float]]]:
    """The polygons (pixels of an image of ``size``) of each blob of a brush region."""
    return mask_outlines(decode_brush(rle, size))
