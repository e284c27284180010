"""One small class per control tag, chosen from a registry, turning a model's output into Label Studio regions.

Importing this package registers every tag: rectangles (also rotated), polygons, brush masks, choices, keypoints
and video tracks. Shared rules live in :mod:`label_studio_yolo.tags.base`.

Example:
    >>> predictor = control_for(spec, weights)
    >>> predictor.regions(output)     # doctest: +SKIP
    [{'from_name': 'label', 'type': 'rectanglelabels', 'value': {...}, 'score': 0.91, ...}]
"""

from label_studio_yolo.tags.base import (
    CONTROL_TYPES,
    Control,
    ObjectControl,
    control_for,
    register_control,
    supported_controls,
)
from label_studio_yolo.tags.brush import BrushLabelsControl
from label_studio_yolo.tags.choices import ChoicesControl
from label_studio_yolo.tags.keypoints import KeyPointLabelsControl
from label_studio_yolo.tags.polygon import PolygonLabelsControl
from label_studio_yolo.tags.rectangle import RectangleLabelsControl
from label_studio_yolo.tags.video import VideoRectangleControl

__all__ = [
    "CONTROL_TYPES",
    "BrushLabelsControl",
    "ChoicesControl",
    "Control",
    "KeyPointLabelsControl",
    "ObjectControl",
    "PolygonLabelsControl",
    "RectangleLabelsControl",
    "VideoRectangleControl",
    "control_for",
    "register_control",
    "supported_controls",
]
