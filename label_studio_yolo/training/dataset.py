"""Turn a project's annotated tasks (read from Label Studio) into an ultralytics detection dataset.

Each task contributes its latest non-cancelled annotation; boxes of the control being trained become YOLO label
lines (class = index of the label in the control). A task annotated with no box is a negative example. The
train/val split depends only on task ids, so the same tasks land in the same split every time.

Example:
    >>> tasks = annotated_tasks(client.tasks.list(project=7, fields="all"), spec)       # doctest: +SKIP
    >>> dataset = write_dataset(tasks, loader, spec, Path("work/dataset"), val_fraction=0.2)
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.media import ImageLoader, MediaError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotatedBox:
    """One annotated box: label and percent geometry (x, y top-left; width, height)."""

    label: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class AnnotatedTask:
    """A task's image and the boxes of its latest annotation."""

    task_id: int
    image: str
    boxes: tuple[AnnotatedBox, ...]


@dataclass
class Dataset:
    """A written dataset: its ``data.yaml``, the tasks in each split, and what was skipped."""

    yaml_path: Path
    train_ids: list[int] = field(default_factory=list)
    val_ids: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def val_dir(self) -> Path:
        return self.yaml_path.parent / "images" / "val"


def _field(item: Any, name: str) -> Any:
    """Read a field from an SDK model or a plain dict."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _latest_annotation(task: Any) -> dict[str, Any] | None:
    annotations = [a for a in (_field(task, "annotations") or []) if not _field(a, "was_cancelled")]
    if not annotations:
        return None
    latest = max(annotations, key=lambda a: (str(_field(a, "updated_at") or ""), _field(a, "id") or 0))
    return latest if isinstance(latest, dict) else latest.dict()


def annotated_tasks(tasks: Iterable[Any], spec: ControlSpec) -> list[AnnotatedTask]:
    """The tasks with a usable annotation for ``spec``'s control, in task-id order."""
    found = []
    for task in tasks:
        annotation = _latest_annotation(task)
        data = _field(task, "data") or {}
        if annotation is None or spec.value_key not in data:
            continue
        boxes = tuple(
            AnnotatedBox(
                region["value"]["rectanglelabels"][0],
                *(float(region["value"][k]) for k in ("x", "y", "width", "height")),
            )
            for region in annotation.get("result") or []
            if region.get("from_name") == spec.from_name and region.get("value", {}).get("rectanglelabels")
        )
        found.append(AnnotatedTask(int(_field(task, "id")), str(data[spec.value_key]), boxes))
    return sorted(found, key=lambda t: t.task_id)


def is_validation(task_id: int, val_fraction: float) -> bool:
    """Deterministic split: the same task is always in the same split."""
    return zlib.crc32(str(task_id).encode()) % 1000 < val_fraction * 1000


def write_dataset(
    tasks: list[AnnotatedTask], loader: ImageLoader, class_names: list[str], root: Path, val_fraction: float
) -> Dataset:
    """Write images and YOLO labels under ``root``; a task whose image fails is skipped with its reason."""
    split_of = {t.task_id: "val" if is_validation(t.task_id, val_fraction) else "train" for t in tasks}
    if tasks and "val" not in split_of.values():
        split_of[tasks[-1].task_id] = "val"
    if len(tasks) > 1 and "train" not in split_of.values():
        split_of[tasks[0].task_id] = "train"
    dataset = Dataset(yaml_path=root / "data.yaml")
    for task in tasks:
        try:
            _write_sample(task, loader, class_names, root, split_of[task.task_id])
        except MediaError as error:
            dataset.skipped[task.task_id] = str(error)
            logger.warning("Task %s left out of training: %s", task.task_id, error)
            continue
        (dataset.val_ids if split_of[task.task_id] == "val" else dataset.train_ids).append(task.task_id)
    names = "\n".join(f"  {index}: {name!r}" for index, name in enumerate(class_names))
    dataset.yaml_path.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return dataset


def _write_sample(task: AnnotatedTask, loader: ImageLoader, class_names: list[str], root: Path, split: str) -> None:
    image = loader.load(task.image)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    image.save(root / "images" / split / f"{task.task_id}.png")
    lines = [
        f"{class_names.index(box.label)} {(box.x + box.width / 2) / 100:.6f} {(box.y + box.height / 2) / 100:.6f} "
        f"{box.width / 100:.6f} {box.height / 100:.6f}"
        for box in task.boxes
        if box.label in class_names
    ]
    (root / "labels" / split / f"{task.task_id}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
