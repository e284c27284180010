"""What a training job learns: the YOLO task of the weights it starts from, and the controls whose annotations feed it.

Fine-tuning keeps the task of the weights it starts from (``YOLO(path).task``); the labelling config then says
which annotations feed that task (each tag class's ``learns_for``). Only controls on an ``<Image>`` without their own
``model_path`` count (a tag with its own weights is not served by the project's trained version). Every such control
on the same image feeds one model whose classes are all their labels (two ``<RectangleLabels>``, or
``<PolygonLabels>`` and ``<BrushLabels>``); classify and pose learn from the first one. Controls a version did not
learn from keep the base weights (``trained_controls`` in its ``meta.json``).

====================  ==============================================  ==========================================
Task                  Annotations                                     Classes
====================  ==============================================  ==========================================
``detect``            ``<RectangleLabels>`` (rotated: their bounds)   the control's labels
``segment``           ``<PolygonLabels>`` or ``<BrushLabels>``        the control's labels
``classify``          ``<Choices>``                                   the choices
``pose``              ``<KeyPointLabels>`` (+ ``<RectangleLabels>``)  the rectangles' labels, else ``object``
``obb``               ``<RectangleLabels>`` with ``rotation``         the control's labels
====================  ==============================================  ==========================================

Example:
    >>> plan = plan_training(config, task="detect", default_threshold=0.5, weights_name="yolo11n.pt")
    >>> plan.class_names
    ('Car', 'Person')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from label_studio_yolo.errors import TrainingError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.label_config import ControlSpec, LabelMap, parse_label_config
from label_studio_yolo.tags import CONTROL_TYPES, ChoicesControl, learning_tags, supported_controls
from label_studio_yolo.tags.base import EXAMPLE_MODEL_FOR_TASK, AnnotatedRegion, LabelledObject
from label_studio_yolo.tags.keypoints import KEYPOINT_OBJECT_CLASS
from label_studio_yolo.training.tasks import TASKS


@dataclass(frozen=True)
class TrainingPlan:
    """The task to train and the controls that feed it.

    ``source`` gives the objects (or the image's class), and ``others`` more objects of the same task on the same
    image; for pose ``source`` is the ``<KeyPointLabels>`` and ``boxes`` the ``<RectangleLabels>`` on the same image
    (None when the config has none).
    """

    task: str
    source: ControlSpec
    boxes: ControlSpec | None = None
    others: tuple[ControlSpec, ...] = ()

    @property
    def sources(self) -> tuple[ControlSpec, ...]:
        """The controls whose regions are objects (or the image's class) of the trained model."""
        return (self.source, *self.others)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The trained model's classes, in class-index order: every source's labels, once each."""
        if TASKS[self.task].keypoints:
            return self.boxes.label_names if self.boxes else (KEYPOINT_OBJECT_CLASS,)
        return tuple(dict.fromkeys(name for spec in self.sources for name in spec.label_names))

    @property
    def from_names(self) -> frozenset[str]:
        """Names of the controls whose regions are read (the controls a version trained by this plan serves)."""
        boxes = {self.boxes.from_name} if self.boxes else set()
        return frozenset({spec.from_name for spec in self.sources} | boxes)

    @property
    def thresholds(self) -> dict[str, float]:
        """Label -> the ``model_score_threshold`` it is served at (its tag's; the first tag's where two hold it)."""
        holders = [self.boxes] if self.boxes else list(self.sources)
        return {name: spec.threshold for spec in reversed(holders) for name in spec.label_names}

    @property
    def keypoint_count(self) -> int:
        """Keypoints per object of a pose dataset: the highest keypoint index of the labels, plus one."""
        return max((point.index for point in self.source.keypoints), default=-1) + 1

    @property
    def own_labels(self) -> LabelMap:
        """Class -> label of a model trained on this project (its classes are the labels themselves)."""
        return LabelMap({name.lower(): name for name in self.class_names})

    def base_labels(self, model_classes: Iterable[str]) -> LabelMap:
        """Class -> label of the base weights, as the backend serves them (the config's ``predicted_values``)."""
        if TASKS[self.task].keypoints and self.boxes is None:
            return LabelMap({name.lower(): KEYPOINT_OBJECT_CLASS for name in model_classes})
        if self.boxes:
            return self.boxes.labels
        return LabelMap({k: v for spec in reversed(self.sources) for k, v in spec.labels.by_class.items()})

    def objects(self, regions: Sequence[AnnotatedRegion], size: ImageSize) -> list[LabelledObject]:
        """The objects to learn in a task's ``regions``, in pixels of its image of ``size`` (none for classify).

        Raises:
            AnnotationError: a region cannot be converted (a brush mask that does not fit its image).
        """
        objects = []
        boxes = {self.boxes.from_name} if self.boxes else set()
        for spec in self.sources:
            tag, own = CONTROL_TYPES[spec.control_type], replace(self, source=spec, others=())
            read = {spec.from_name} | boxes  # pose: the keypoints' tag reads the rectangles' regions too
            objects += tag.training_objects(own, [region for region in regions if region.from_name in read], size)
        return objects

    def image_class(self, regions: Sequence[AnnotatedRegion]) -> str:
        """The class of a classification task's image (its first choice).

        Raises:
            AnnotationError: there is no choice, or the choice is no longer in the config.
        """
        return ChoicesControl.image_class(regions, self.source)

    def describe(self) -> str:
        """The controls, as XML tags, for messages."""
        specs = [*self.sources, *([self.boxes] if self.boxes else [])]
        return " + ".join(f"<{spec.control_type} name={spec.from_name!r}>" for spec in specs)


def plan_training(label_config: str, task: str, default_threshold: float, weights_name: str) -> TrainingPlan:
    """What to train for a project whose weights (``weights_name``) are a ``task`` model.

    Raises:
        LabelConfigError: the config itself cannot be used by this backend.
        TrainingError: no control of the config feeds ``task`` (the message shows XML that would), or a
            ``<Choice>`` value cannot name a class folder.
    """
    if task not in TASKS:
        raise TrainingError(f"{weights_name} is a {task!r} model; training supports {', '.join(TASKS)} models")
    specs = parse_label_config(label_config, default_threshold, supported_controls())
    usable = [spec for spec in specs if spec.object_type == "Image" and spec.model_path is None]
    sources = [spec for spec in usable if spec.control_type in learning_tags(task)]
    if not sources:
        raise TrainingError(_no_source_message(task, weights_name, specs, usable))
    source, boxes, others = sources[0], None, tuple[ControlSpec, ...]()
    if TASKS[task].keypoints:
        boxes = next((s for s in usable if s.control_type == "RectangleLabels" and s.to_name == source.to_name), None)
    if TASKS[task].several_sources:
        others = tuple(spec for spec in sources[1:] if spec.to_name == source.to_name)
    plan = TrainingPlan(task, source, boxes, others)
    _check_class_names(plan)
    return plan


def _check_class_names(plan: TrainingPlan) -> None:
    """Raise TrainingError when the plan has no classes (or keypoints) or a choice cannot name a folder."""
    if not plan.class_names:
        raise TrainingError(f"{plan.describe()} has no labels to train; add <Label> (or <Choice>) tags to it")
    if TASKS[plan.task].keypoints and plan.keypoint_count == 0:
        raise TrainingError(f"{plan.describe()} has no keypoint labels; add <Label> tags to the <KeyPointLabels>")
    if TASKS[plan.task].image_class:
        for name in plan.class_names:
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise TrainingError(
                    f'<Choice value="{name}"> of {plan.describe()} cannot name a class folder of the classification '
                    'dataset; use a value without slashes, e.g. <Choice value="Cat"/>'
                )


def _no_source_message(task: str, weights_name: str, specs: list[ControlSpec], usable: list[ControlSpec]) -> str:
    """Why nothing in the config feeds ``task``, with XML that would, and which models its ``usable`` tags train."""
    wanted = " or ".join(f"<{tag}>" for tag in learning_tags(task))
    found = ", ".join(
        f"<{s.control_type} name={s.from_name!r}>"
        + (f" on <{s.object_type}>" if s.object_type != "Image" else "")
        + (" with its own model_path" if s.model_path else "")
        for s in specs
    )
    message = (
        f"Training fine-tunes {weights_name}, a {task} model, which learns from {wanted} on an <Image> without "
        f"model_path; the labelling config has {found}. A config that trains it:\n"
        f'<View>\n  <Image name="image" value="$image"/>\n  {TASKS[task].example_config}\n</View>'
    )
    other_tasks = [t for t in TASKS if t != task and any(s.control_type in learning_tags(t) for s in usable)]
    if other_tasks:
        examples = ", ".join(f"{EXAMPLE_MODEL_FOR_TASK[t]} ({t})" for t in other_tasks)
        message += f"\nTo learn from the config's tags instead, start from another kind of model: MODEL_PATH={examples}"
    return message
