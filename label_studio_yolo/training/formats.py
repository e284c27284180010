"""YOLO label lines and ``data.yaml`` for each task (coordinates normalised to 0-1 by the image's size).

==========  ==========================================================================
Task        One line per object
==========  ==========================================================================
detect      ``class cx cy w h``
segment     ``class x1 y1 x2 y2 ...`` (the outline)
pose        ``class cx cy w h`` then ``x y 2`` per keypoint index, ``0 0 0`` when missing
obb         ``class x1 y1 x2 y2 x3 y3 x4 y4`` (the corners)
==========  ==========================================================================

Classification has no label files: the image's folder is its class (:mod:`label_studio_yolo.training.dataset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from label_studio_yolo.geometry import ImageSize, Point
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.tasks import TASKS

VISIBLE = 2
"""ultralytics' visibility flag of an annotated keypoint (0 marks a missing one)."""


def _xy(point: Point, size: ImageSize) -> str:
    return f"{point[0] / size.width:.6f} {point[1] / size.height:.6f}"


def label_line(task: str, item: LabelledObject, class_index: int, size: ImageSize) -> str:
    """One object's line in ``task``'s label format."""
    if TASKS[task].outline:
        return f"{class_index} " + " ".join(_xy(point, size) for point in item.outline)
    x0, y0, x1, y1 = item.box
    line = f"{class_index} {_xy(((x0 + x1) / 2, (y0 + y1) / 2), size)} {_xy((x1 - x0, y1 - y0), size)}"
    if TASKS[task].keypoints:
        line += "".join(f" {_xy(point, size)} {VISIBLE}" if point else " 0 0 0" for point in item.keypoints)
    return line


def label_file_text(task: str, objects: Sequence[LabelledObject], class_names: Sequence[str], size: ImageSize) -> str:
    """A label file: one line per object (an empty file is a negative example)."""
    lines = [label_line(task, item, class_names.index(item.label), size) for item in objects]
    return "".join(f"{line}\n" for line in lines)


def data_yaml(root: Path, class_names: Sequence[str], keypoint_count: int | None = None) -> str:
    """``data.yaml`` of a detect, segment, pose or obb dataset under ``root``.

    Pose datasets get ``kpt_shape`` and no ``flip_idx``: the config does not say which keypoints swap in a mirror
    image (left/right eye), so ultralytics turns flip augmentation off.
    """
    data: dict[str, object] = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(class_names)),
    }
    if keypoint_count is not None:
        data["kpt_shape"] = [keypoint_count, 3]
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
