"""One small class per control tag, chosen from a registry, turning a model's output into Label Studio regions.

Importing this package registers every tag: rectangles (also rotated), polygons, brush masks, choices, keypoints
and video tracks. Shared rules live in :mod:`label_studio_yolo.controls.base`.

Example:
    >>> predictor = control_for(spec, weights)
    >>> predictor.regions(output)     # doctest: +SKIP
    [{'from_name': 'label', 'type': 'rectanglelabels', 'value': {...}, 'score': 0.91, ...}]
"""

from label_studio_yolo.controls.base import (
    CONTROL_TYPES,
    ControlPredictor,
    ObjectControl,
    control_for,
    register_control,
    supported_controls,
)
from label_studio_yolo.controls.brush import BrushLabelsControl
from label_studio_yolo.controls.choices import ChoicesControl
from label_studio_yolo.controls.keypoints import KeyPointLabelsControl
from label_studio_yolo.controls.polygon import PolygonLabelsControl
from label_studio_yolo.controls.rectangle import RectangleLabelsControl
from label_studio_yolo.controls.video import VideoRectangleControl

__all__ = [
    "CONTROL_TYPES",
    "BrushLabelsControl",
    "ChoicesControl",
    "ControlPredictor",
    "KeyPointLabelsControl",
    "ObjectControl",
    "PolygonLabelsControl",
    "RectangleLabelsControl",
    "VideoRectangleControl",
    "control_for",
    "register_control",
    "supported_controls",
]
