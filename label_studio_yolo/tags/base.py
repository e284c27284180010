"""What every control tag class shares, in both directions: model output -> regions, annotation -> training target.

Predicting, a detection (or a class) is kept when its score reaches the control's ``model_score_threshold`` and a
``<Label>``/``<Choice>`` claims its class; an object control (rectangles, polygons, masks) only says what geometry a
region of its tag has. Learning, a class reads its tag's annotation results into typed regions
(:class:`AnnotatedRegion`) and turns them into :class:`LabelledObject` targets in pixels for the YOLO tasks it
feeds (``learns_for``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from label_studio_yolo.geometry import Box, ImageSize, Point, bounds, clip_point
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.inference.weights import LoadedWeights
from label_studio_yolo.label_config import ControlSpec, unmapped_control_hint

if TYPE_CHECKING:
    from label_studio_yolo.vlm.stages import VlmStage

EXAMPLE_MODEL_FOR_TASK = {
    "detect": "yolo11n.pt",
    "segment": "yolo11n-seg.pt",
    "classify": "yolo11n-cls.pt",
    "pose": "yolo11n-pose.pt",
    "obb": "yolo11n-obb.pt",
}
"""An official model of each YOLO task, named in error messages (in the order tasks are listed)."""


@dataclass(frozen=True)
class AnnotatedRegion:
    """One region of an annotation: the control (``from_name``) it belongs to and its (first) label."""

    from_name: str
    label: str


class LearningPlan(Protocol):
    """What a model learns from a tag: the YOLO ``task``, the tag's own control (``source``) and, where its objects
    are another tag's boxes (pose), that ``<RectangleLabels>`` (``boxes``). ``training.plan.TrainingPlan`` is one."""

    @property
    def task(self) -> str: ...

    @property
    def source(self) -> ControlSpec: ...

    @property
    def boxes(self) -> ControlSpec | None: ...


@dataclass(frozen=True)
class LabelledObject:
    """One object to learn, in pixels: its label, axis-aligned bounds, outline (segment: polygon; obb: the four
    corners) and, for pose, its keypoints by keypoint index (None where not annotated)."""

    label: str
    box: Box
    outline: tuple[Point, ...] = ()
    keypoints: tuple[Point | None, ...] = ()


class Control(ABC):
    """Regions of one control tag, from the output of its model on its image (or video)."""

    control_type: ClassVar[str]
    """The Label Studio tag this class fills, e.g. ``RectangleLabels``."""
    object_tags: ClassVar[frozenset[str]] = frozenset({"Image"})
    """Object tags the control can label."""
    model_tasks: ClassVar[frozenset[str]]
    """YOLO tasks (``model.task``) whose output has what the control needs."""
    result_type: ClassVar[str] = ""
    """The ``type`` of the tag's items in an annotation's ``result`` (empty: training reads none)."""
    learns_for: ClassVar[frozenset[str]] = frozenset()
    """YOLO tasks a model learns from this tag's annotations."""

    def __init__(self, spec: ControlSpec, weights: LoadedWeights) -> None:
        self.spec = spec
        self.weights = weights
        self.vlm: VlmStage | None = None
        """The vision-language stage between the model's output and the regions, if the control has one."""

    @abstractmethod
    def regions(self, output: ModelOutput) -> list[dict[str, Any]]:
        """The control's regions for one image."""

    def link(self, controls: Sequence[Control]) -> None:
        """Learn about the other controls of the config (keypoints find their parent boxes); nothing by default."""
        del controls

    def unusable_reason(self) -> str | None:
        """Why this control cannot be filled with its weights (wrong task, no label maps a class), else None.

        A control filled zero-shot by a vision-language model needs neither; one it refines needs the task only
        (its labels come from the model's answers).
        """
        if self.vlm is not None and not self.vlm.needs_yolo:
            return None
        task = self.weights.task
        if task not in self.model_tasks:
            wanted = " or ".join(sorted(self.model_tasks))
            example = EXAMPLE_MODEL_FOR_TASK[sorted(self.model_tasks)[0]]
            return (
                f"<{self.control_type}> needs a {wanted} model, but {self.weights.path.name} is a {task} model. "
                f'Name one for this tag, e.g. <{self.control_type} name="{self.spec.from_name}" '
                f'toName="{self.spec.to_name}" model_path="{example}">.'
            )
        if self.vlm is None and not self.maps_a_class():
            return unmapped_control_hint(self.spec, self.weights.class_names.values())
        return None

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> AnnotatedRegion:
        """The typed region of one of the tag's annotation result items, labelled ``label``.

        Raises:
            KeyError, TypeError, ValueError: the item lacks its geometry or has non-numbers in it.
        """
        return AnnotatedRegion(str(item["from_name"]), label)

    @classmethod
    def training_objects(
        cls, plan: LearningPlan, regions: Sequence[AnnotatedRegion], size: ImageSize
    ) -> list[LabelledObject]:
        """The objects a ``plan.task`` model learns from the tag's ``regions`` on an image of ``size`` (regions whose
        label ``plan.source`` no longer has are left out). None by default (classification).

        Raises:
            AnnotationError: a region cannot be converted (the message says which and why).
        """
        del plan, regions, size
        return []

    def maps_a_class(self) -> bool:
        """Whether a label of the control takes at least one class of its model."""
        return bool(self.spec.labels.restricted_to(self.weights.class_names.values()).by_class)


class ObjectControl(Control):
    """A control with one region per detected object; subclasses give the region's geometry."""

    model_tasks = frozenset({"detect", "segment", "pose", "obb"})

    def regions(self, output: ModelOutput) -> list[dict[str, Any]]:
        """Regions for the detections that pass the threshold and whose class a label claims."""
        regions = []
        for detection in output.detections:
            label = self.spec.labels.label_for(detection.class_name)
            if label is None or detection.score < self.spec.threshold:
                continue
            geometry = self.geometry(detection, output)
            if geometry is not None:
                region_id = object_region_id(self.spec.from_name, detection)
                regions.append(build_region(self.spec, label, geometry, detection.score, output.size, region_id))
        return regions

    @abstractmethod
    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any] | None:
        """The region's ``value`` without its labels (percent coordinates), or None to leave the object out."""


def object_region_id(from_name: str, detection: Detection) -> str:
    """A region id that other controls filled from the same model output can refer to."""
    return f"{from_name}-{detection.index}"


def build_region(
    spec: ControlSpec,
    label: str | list[str],
    value: dict[str, Any],
    score: float,
    size: ImageSize | None,
    region_id: str | None = None,
) -> dict[str, Any]:
    """One prediction region of ``spec``'s control with ``label``, geometry ``value`` and ``score``.

    ``size`` is the image's, for regions with geometry; whole-image regions (choices) have none. ``region_id``
    replaces the SDK's random id where another region must refer to this one (a keypoint's ``parentID``).
    """
    sdk_region = spec.tag.label(label=label, to_name=spec.to_name, **value)
    region: dict[str, Any] = json.loads(sdk_region.to_json())  # type: ignore[no-untyped-call]
    if region_id is not None:
        region["id"] = region_id
    region["score"] = round(score, 4)
    if size is not None:
        region.update(original_width=size.width, original_height=size.height, image_rotation=0)
    return region


def outline_objects(label: str, outlines: Sequence[Sequence[Point]], size: ImageSize) -> list[LabelledObject]:
    """One object per outline of at least three points, clipped to the image."""
    objects = []
    for outline in outlines:
        if len(outline) >= 3:
            clipped = tuple(clip_point(point, size) for point in outline)
            objects.append(LabelledObject(label, bounds(clipped, size), clipped))
    return objects
