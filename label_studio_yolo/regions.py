"""Build Label Studio regions (prediction ``result`` items) from geometry in pixels.

The region's JSON comes from label-studio-sdk (``ControlTag.label``), which also checks that the label exists in
the config; this module adds what a prediction needs on top: the score and the original image size.

Example:
    >>> rectangle_percent(10, 20, 50, 60, ImageSize(200, 100))
    {'x': 5.0, 'y': 20.0, 'width': 20.0, 'height': 40.0, 'rotation': 0}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.label_config import ControlSpec


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


def percent_point(x: float, y: float, size: ImageSize) -> tuple[float, float]:
    """A pixel point as percent of the image, clipped to it."""
    return (_clamp_percent(x / size.width * 100), _clamp_percent(y / size.height * 100))


def build_region(
    spec: ControlSpec, label: str | list[str], value: dict[str, Any], score: float, size: ImageSize | None
) -> dict[str, Any]:
    """One prediction region of ``spec``'s control with ``label``, geometry ``value`` and ``score``.

    ``size`` is the image's, for regions with geometry; whole-image regions (choices) have none.
    """
    sdk_region = spec.tag.label(label=label, to_name=spec.to_name, **value)
    region: dict[str, Any] = json.loads(sdk_region.to_json())  # type: ignore[no-untyped-call]
    region["score"] = round(score, 4)
    if size is not None:
        region.update(original_width=size.width, original_height=size.height, image_rotation=0)
    return region
