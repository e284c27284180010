"""One small class per control tag, chosen from a registry, turning detections into regions.

Every control shares the same rules (the base class): a detection is kept when its score reaches the control's
``model_score_threshold`` and a ``<Label>`` claims its class; the subclass only says what geometry a region of its
tag has. New tags register themselves with :func:`register_control`.

Example:
    >>> predictor = control_for(spec)
    >>> predictor.regions(detections, ImageSize(640, 480))     # doctest: +SKIP
    [{'from_name': 'label', 'type': 'rectanglelabels', 'value': {...}, 'score': 0.91, ...}]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from label_studio_yolo.inference import Detection
from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.regions import ImageSize, build_region, rectangle_percent


class ControlPredictor(ABC):
    """Regions of one control tag from the detections on its image."""

    control_type: ClassVar[str]

    def __init__(self, spec: ControlSpec) -> None:
        self.spec = spec

    def regions(self, detections: Sequence[Detection], size: ImageSize) -> list[dict[str, Any]]:
        """Regions for the detections that pass the threshold and whose class a label claims."""
        regions = []
        for detection in detections:
            label = self.spec.labels.label_for(detection.class_name)
            if label is None or detection.score < self.spec.threshold:
                continue
            regions.append(build_region(self.spec, label, self.geometry(detection, size), detection.score, size))
        return regions

    @abstractmethod
    def geometry(self, detection: Detection, size: ImageSize) -> dict[str, Any]:
        """The region's ``value`` without its labels (percent coordinates)."""


CONTROL_TYPES: dict[str, type[ControlPredictor]] = {}
"""Control tag name -> the class that fills it."""


def register_control(cls: type[ControlPredictor]) -> type[ControlPredictor]:
    """Class decorator adding a control class to :data:`CONTROL_TYPES`."""
    CONTROL_TYPES[cls.control_type] = cls
    return cls


def control_for(spec: ControlSpec) -> ControlPredictor:
    """The registered predictor for ``spec``'s control tag."""
    return CONTROL_TYPES[spec.control_type](spec)


@register_control
class RectangleLabelsControl(ControlPredictor):
    """``<RectangleLabels>``: axis-aligned boxes from a detection model."""

    control_type = "RectangleLabels"

    def geometry(self, detection: Detection, size: ImageSize) -> dict[str, Any]:
        return rectangle_percent(detection.x0, detection.y0, detection.x1, detection.y1, size)


def supported_control_types() -> list[str]:
    """Names of every control tag a registered class fills."""
    return sorted(CONTROL_TYPES)
