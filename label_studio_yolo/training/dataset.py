"""Write a project's annotated tasks as an ultralytics dataset of the task being trained, with a deterministic split.

- detect, segment, pose, obb: ``images/<split>/<task id>.png``, ``labels/<split>/<task id>.txt`` (one line per object,
  :mod:`label_studio_yolo.training.formats`) and ``data.yaml``; a task annotated with no object is a negative example.
- classify: ultralytics' ImageFolder layout, ``<split>/<class>/<task id>.png``; every class gets a folder in every
  split, empty or not, since ultralytics indexes each split's folders by name.

A task whose image fails to load or whose annotation cannot be converted is skipped with its reason.

Example:
    >>> tasks = annotated_tasks(client.tasks.list(project=7, fields="all"), "image", plan.from_names)  # doctest: +SKIP
    >>> split_of = split_tasks(task_labels(plan, tasks), val_fraction=0.25, min_val=4)
    >>> dataset = write_dataset(tasks, loader, plan, Path("work/dataset"), split_of)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from label_studio_yolo.errors import AnnotationError, MediaError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.logsafe import printable, text_shown
from label_studio_yolo.media.loader import ImageLoader
from label_studio_yolo.media.storage import locate
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.annotations import AnnotatedTask
from label_studio_yolo.training.formats import data_yaml, label_file_text
from label_studio_yolo.training.known_objects import KnownObjects
from label_studio_yolo.training.plan import TrainingPlan
from label_studio_yolo.training.tasks import TASKS

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")


@dataclass(frozen=True)
class ValImage:
    """A val image of the dataset and its truth: its labelled objects in pixels, or (classify) the image's class."""

    path: Path
    objects: tuple[LabelledObject, ...] = ()
    label: str | None = None


@dataclass
class Dataset:
    """A written dataset: where it is, the tasks in each split, the val images' truth, and what was skipped."""

    root: Path
    task: str
    train_ids: list[int] = field(default_factory=list)
    val_ids: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    val_images: list[ValImage] = field(default_factory=list)

    @property
    def data(self) -> Path:
        """What ultralytics' ``train(data=...)`` takes: the folder (classify) or its ``data.yaml``."""
        return self.root if TASKS[self.task].image_class else self.root / "data.yaml"


def task_labels(plan: TrainingPlan, tasks: list[AnnotatedTask]) -> dict[int, set[str]]:
    """Task id -> the plan's classes annotated on it (what the split stratifies by)."""
    return {task.task_id: {r.label for r in task.regions if r.label in plan.class_names} for task in tasks}


def data_fingerprint(plan: TrainingPlan, tasks: list[AnnotatedTask], how: object = None) -> str:
    """A digest of what a job learns from and ``how`` (its settings): the task, the classes, and every task's image
    and regions.

    Regions are frozen dataclasses, so their ``repr`` is a stable description of the annotation.
    """
    digest = hashlib.sha256(repr((plan.task, plan.class_names, how)).encode())
    for task in sorted(tasks, key=lambda item: item.task_id):
        digest.update(repr((task.task_id, task.image, task.regions, task.error, task.from_prediction)).encode())
    return digest.hexdigest()[:16]


def write_dataset(
    tasks: list[AnnotatedTask],
    loader: ImageLoader,
    plan: TrainingPlan,
    root: Path,
    split_of: dict[int, str],
    known: KnownObjects | None = None,
) -> Dataset:
    """Write images and labels of ``plan.task`` under ``root`` in the splits of ``split_of`` (task id -> split); a
    task that fails is skipped with its reason.

    ``known`` adds the served model's objects of the labels a training image's annotation does not mention (val
    images keep the annotators' truth alone: the gate judges on it).
    """
    dataset = Dataset(root=root, task=plan.task)
    for task in tasks:
        split = split_of[task.task_id]
        try:
            written = _write_sample(task, loader, plan, root, split, known if split == "train" else None)
        except (MediaError, AnnotationError) as error:
            dataset.skipped[task.task_id] = str(error)
            logger.warning("Task %s left out of training: %s", printable(task.task_id), text_shown(str(error), 500))
            continue
        if split == "val":
            dataset.val_ids.append(task.task_id)
            dataset.val_images.append(written)
        else:
            dataset.train_ids.append(task.task_id)
    _write_layout(plan, root)
    return dataset


def _write_sample(
    task: AnnotatedTask, loader: ImageLoader, plan: TrainingPlan, root: Path, split: str, known: KnownObjects | None
) -> ValImage:
    """Write one task's image (and label file), with ``known``'s objects if given; return it with its truth."""
    if task.error:
        raise AnnotationError(task.error)
    label = plan.image_class(task.regions) if TASKS[plan.task].image_class else None
    image = loader.load(locate(task.image, task.task_id))
    if label is not None:
        path = root / split / label / f"{task.task_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return ValImage(path, label=label)
    size = ImageSize(*image.size)
    objects = plan.objects(task.regions, size)
    if known is not None:
        objects += known.missing(image, objects, task.from_prediction)
    path = root / "images" / split / f"{task.task_id}.png"
    labels = root / "labels" / split / f"{task.task_id}.txt"
    for folder in (path.parent, labels.parent):
        folder.mkdir(parents=True, exist_ok=True)
    labels.write_text(label_file_text(plan.task, objects, plan.class_names, size))
    image.save(path)
    return ValImage(path, objects=tuple(objects))


def _write_layout(plan: TrainingPlan, root: Path) -> None:
    """Every class folder of a classification dataset in every split; ``data.yaml`` for the other tasks."""
    root.mkdir(parents=True, exist_ok=True)
    if TASKS[plan.task].image_class:
        for split in SPLITS:
            for name in plan.class_names:
                (root / split / name).mkdir(parents=True, exist_ok=True)
        return
    keypoints = plan.keypoint_count if TASKS[plan.task].keypoints else None
    (root / "data.yaml").write_text(data_yaml(root, plan.class_names, keypoints))
