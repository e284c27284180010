"""Pixels and Label Studio's percent geometry: image sizes, rectangles (also rotated), points.

Example:
    >>> rectangle_percent(10, 20, 50, 60, ImageSize(200, 100))
    {'x': 5.0, 'y': 20.0, 'width': 20.0, 'height': 40.0, 'rotation': 0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Point = tuple[float, float]
"""x, y."""

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels."""

RIGHT_ANGLE_TOLERANCE = 1e-9
"""Quarter turns within this of a whole number count as a right angle (an upright box)."""


@dataclass(frozen=True)
class ImageSize:
    """Width and height in pixels of the image as Label Studio shows it (EXIF rotation applied)."""

    width: int
    height: int


def _clamp_percent(value: float) -> float:
    return min(100.0, max(0.0, value))


def rectangle_percent(x0: float, y0: float, x1: float, y1: float, size: ImageSize) -> dict[str, float]:
    """A pixel box as Label Studio's percent rectangle, clipped to the image."""
    left = _clamp_percent(x0 / size.width * 100)
    top = _clamp_percent(y0 / size.height * 100)
    right = _clamp_percent(x1 / size.width * 100)
    bottom = _clamp_percent(y1 / size.height * 100)
    return {"x": left, "y": top, "width": right - left, "height": bottom - top, "rotation": 0}


def rotated_rectangle_percent(
    cx: float, cy: float, width: float, height: float, angle: float, size: ImageSize
) -> dict[str, float]:
    """A pixel box rotated clockwise by ``angle`` radians about its centre, as Label Studio's rectangle.

    Label Studio rotates a rectangle about its top-left corner (``x``, ``y``), so that corner is where the rotated
    box's first corner lies; ``rotation`` is in degrees, clockwise, in [0, 360). A box that crosses the image's
    edge at a right angle becomes an upright box clipped to the image; at other angles its corner is clipped.
    """
    quarter_turns = angle / (math.pi / 2)
    corners = rotated_corners(cx, cy, width, height, angle)
    inside = all(0 <= x <= size.width and 0 <= y <= size.height for x, y in corners)
    if not inside and abs(quarter_turns - round(quarter_turns)) < RIGHT_ANGLE_TOLERANCE:
        upright_width, upright_height = (width, height) if round(quarter_turns) % 2 == 0 else (height, width)
        x0, y0 = cx - upright_width / 2, cy - upright_height / 2
        return rectangle_percent(x0, y0, x0 + upright_width, y0 + upright_height, size)
    cos, sin = math.cos(angle), math.sin(angle)
    corner_x = cx - width / 2 * cos + height / 2 * sin
    corner_y = cy - width / 2 * sin - height / 2 * cos
    rotation = math.degrees(angle) % 360
    return {
        "x": _clamp_percent(corner_x / size.width * 100),
        "y": _clamp_percent(corner_y / size.height * 100),
        "width": min(100.0, width / size.width * 100),
        "height": min(100.0, height / size.height * 100),
        "rotation": rotation if rotation < 360 else 0.0,  # a tiny negative angle's remainder rounds up to 360
    }


def rotated_corners(cx: float, cy: float, width: float, height: float, angle: float) -> list[tuple[float, float]]:
    """The four corners (pixels) of a box rotated clockwise by ``angle`` radians about its centre."""
    cos, sin = math.cos(angle), math.sin(angle)
    offsets = [(-width / 2, -height / 2), (width / 2, -height / 2), (width / 2, height / 2), (-width / 2, height / 2)]
    return [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos) for dx, dy in offsets]


def rectangle_corners(
    x: float, y: float, width: float, height: float, rotation: float, size: ImageSize
) -> list[tuple[float, float]]:
    """The four corners (pixels) of a Label Studio rectangle: the inverse of :func:`rotated_rectangle_percent`.

    ``x``, ``y`` (the top-left corner, which the rectangle rotates about), ``width`` and ``height`` are percent of the
    image's width and height, so they go through pixels before rotating; ``rotation`` is in degrees, clockwise. The
    corners come in :func:`rotated_corners` order (top-left, top-right, bottom-right, bottom-left of the unrotated box).
    """
    corner_x, corner_y = x / 100 * size.width, y / 100 * size.height
    box_width, box_height = width / 100 * size.width, height / 100 * size.height
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    cx = corner_x + box_width / 2 * cos - box_height / 2 * sin
    cy = corner_y + box_width / 2 * sin + box_height / 2 * cos
    return rotated_corners(cx, cy, box_width, box_height, angle)


def pixel_point(x: float, y: float, size: ImageSize) -> tuple[float, float]:
    """A point in percent of the image (as Label Studio stores it) in pixels: the inverse of :func:`percent_point`."""
    return (x / 100 * size.width, y / 100 * size.height)


def percent_point(x: float, y: float, size: ImageSize) -> tuple[float, float]:
    """A pixel point as percent of the image, clipped to it."""
    return (_clamp_percent(x / size.width * 100), _clamp_percent(y / size.height * 100))


def clip_point(point: Point, size: ImageSize) -> Point:
    """A pixel point moved onto the image if it lies outside."""
    return (min(max(point[0], 0.0), float(size.width)), min(max(point[1], 0.0), float(size.height)))


def bounds(points: Iterable[Point], size: ImageSize, margin: float = 0.0) -> Box:
    """The axis-aligned box around ``points`` grown by ``margin`` pixels, clipped to the image."""
    xs, ys = zip(*points, strict=True)
    x0, y0 = clip_point((min(xs) - margin, min(ys) - margin), size)
    x1, y1 = clip_point((max(xs) + margin, max(ys) + margin), size)
    return (x0, y0, x1, y1)
