"""One class per Label Studio control tag, each owning both directions: its model's output -> regions, and its
annotations -> training targets. The registry below says which class fills a tag, which YOLO tasks it serves
(``model_tasks``) and which it learns for (``learns_for``).

Adding a tag: a module here with its class (see :mod:`label_studio_yolo.tags.base`), one line in
:data:`CONTROL_CLASSES`, and a test module.

Example:
    >>> control = control_for(spec, weights)
    >>> control.regions(output)     # doctest: +SKIP
    [{'from_name': 'label', 'type': 'rectanglelabels', 'value': {...}, 'score': 0.91, ...}]
"""

from __future__ import annotations

from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.tags.base import Control, ObjectControl
from label_studio_yolo.tags.brush import BrushLabelsControl
from label_studio_yolo.tags.choices import ChoicesControl
from label_studio_yolo.tags.keypoints import KeyPointLabelsControl
from label_studio_yolo.tags.polygon import PolygonLabelsControl
from label_studio_yolo.tags.rectangle import RectangleLabelsControl
from label_studio_yolo.tags.video import VideoRectangleControl

CONTROL_CLASSES: tuple[type[Control], ...] = (
    RectangleLabelsControl,
    PolygonLabelsControl,
    BrushLabelsControl,
    ChoicesControl,
    KeyPointLabelsControl,
    VideoRectangleControl,
)
"""Every control tag class; for a task several tags learn, the first listed is named first in messages."""

CONTROL_TYPES: dict[str, type[Control]] = {cls.control_type: cls for cls in CONTROL_CLASSES}
"""Control tag name -> its class."""

ANNOTATION_READERS: dict[str, type[Control]] = {cls.result_type: cls for cls in CONTROL_CLASSES if cls.result_type}
"""Annotation result ``type`` -> the class that reads it (tags training does not read have no ``result_type``)."""


def control_for(spec: ControlSpec, weights: LoadedWeights) -> Control:
    """The class for ``spec``'s control tag, filled with ``weights``."""
    return CONTROL_TYPES[spec.control_type](spec, weights)


def supported_controls() -> dict[str, frozenset[str]]:
    """Every control tag a class fills, with the object tags it labels."""
    return {name: cls.object_tags for name, cls in sorted(CONTROL_TYPES.items())}


def learning_tags(task: str) -> tuple[str, ...]:
    """The control tags whose annotations a ``task`` model learns from."""
    return tuple(cls.control_type for cls in CONTROL_CLASSES if task in cls.learns_for)


def annotation_reader(result_type: str) -> type[Control] | None:
    """The class that reads annotation results of ``result_type`` (``rectanglelabels``), if training reads them."""
    return ANNOTATION_READERS.get(result_type)


__all__ = [
    "ANNOTATION_READERS",
    "CONTROL_CLASSES",
    "CONTROL_TYPES",
    "BrushLabelsControl",
    "ChoicesControl",
    "Control",
    "KeyPointLabelsControl",
    "ObjectControl",
    "PolygonLabelsControl",
    "RectangleLabelsControl",
    "VideoRectangleControl",
    "annotation_reader",
    "control_for",
    "learning_tags",
    "supported_controls",
]
