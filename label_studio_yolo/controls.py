"""One small class per control tag, chosen from a registry, turning a model's output into Label Studio regions.

The shared rules live in the base classes: a detection (or a class) is kept when its score reaches the control's
``model_score_threshold`` and a ``<Label>``/``<Choice>`` claims its class. An object control (rectangles,
polygons) only says what geometry a region of its tag has; a whole-image control (choices) says which classes it
keeps. New tags register themselves with :func:`register_control`.

Example:
    >>> predictor = control_for(spec, weights)
    >>> predictor.regions(output, ImageSize(640, 480))     # doctest: +SKIP
    [{'from_name': 'label', 'type': 'rectanglelabels', 'value': {...}, 'score': 0.91, ...}]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from label_studio_yolo.inference import Detection, ModelOutput
from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.regions import ImageSize, build_region, percent_point, rectangle_percent
from label_studio_yolo.weights import LoadedWeights


class ControlPredictor(ABC):
    """Regions of one control tag, from the output of its model on its image."""

    control_type: ClassVar[str]

    def __init__(self, spec: ControlSpec, weights: LoadedWeights) -> None:
        self.spec = spec
        self.weights = weights

    @abstractmethod
    def regions(self, output: ModelOutput, size: ImageSize) -> list[dict[str, Any]]:
        """The control's regions for one image."""


class ObjectControl(ControlPredictor):
    """A control with one region per detected object (boxes, polygons)."""

    def regions(self, output: ModelOutput, size: ImageSize) -> list[dict[str, Any]]:
        """Regions for the detections that pass the threshold and whose class a label claims."""
        regions = []
        for detection in output.detections:
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


def control_for(spec: ControlSpec, weights: LoadedWeights) -> ControlPredictor:
    """The registered predictor for ``spec``'s control tag, using ``weights``."""
    return CONTROL_TYPES[spec.control_type](spec, weights)


def supported_control_types() -> list[str]:
    """Names of every control tag a registered class fills."""
    return sorted(CONTROL_TYPES)


@register_control
class RectangleLabelsControl(ObjectControl):
    """``<RectangleLabels>``: axis-aligned boxes from a detection (or segmentation) model."""

    control_type = "RectangleLabels"

    def geometry(self, detection: Detection, size: ImageSize) -> dict[str, Any]:
        return rectangle_percent(detection.x0, detection.y0, detection.x1, detection.y1, size)


@register_control
class PolygonLabelsControl(ObjectControl):
    """``<PolygonLabels>``: object outlines from a segmentation model (a detection model gives box corners)."""

    control_type = "PolygonLabels"

    def geometry(self, detection: Detection, size: ImageSize) -> dict[str, Any]:
        outline = detection.polygon or (
            (detection.x0, detection.y0),
            (detection.x1, detection.y0),
            (detection.x1, detection.y1),
            (detection.x0, detection.y1),
        )
        return {"points": [percent_point(x, y, size) for x, y in outline]}


@register_control
class ChoicesControl(ControlPredictor):
    """``<Choices>``: the image's class from a classification model; ``choice="multiple"`` keeps every class
    above the threshold, otherwise only the best one."""

    control_type = "Choices"

    def regions(self, output: ModelOutput, size: ImageSize) -> list[dict[str, Any]]:
        best_score: dict[str, float] = {}
        for item in output.classes:  # best first
            label = self.spec.labels.label_for(item.class_name)
            if label is not None and item.score >= self.spec.threshold and label not in best_score:
                best_score[label] = item.score
        if not best_score:
            return []
        chosen = list(best_score) if (self.spec.tag.attr or {}).get("choice") == "multiple" else list(best_score)[:1]
        return [build_region(self.spec, chosen, {}, best_score[chosen[0]], size=None)]
