"""training/formats.py on its own: one YOLO label line per object for each task, and ``data.yaml``.

ultralytics reads these files back (test_training_tasks.py trains on them); here each format is pinned to the
numbers ultralytics' documentation gives for it, normalised by the image's size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.tags.base import LabelledObject
from label_studio_yolo.training.formats import data_yaml, label_file_text, label_line

SIZE = ImageSize(200, 100)
BOX = LabelledObject("Car", (20.0, 10.0, 120.0, 60.0))
"""A 100 x 50 box whose centre is (70, 35) on a 200 x 100 image."""


def numbers(line: str) -> list[float]:
    return [float(value) for value in line.split()]


def test_a_detect_line_is_the_class_then_the_normalised_centre_and_size() -> None:
    assert numbers(label_line("detect", BOX, 1, SIZE)) == pytest.approx([1, 0.35, 0.35, 0.5, 0.5])


@pytest.mark.parametrize("task", ["segment", "obb"])
def test_segment_and_obb_lines_are_the_normalised_outline(task: str) -> None:
    outline = ((20.0, 10.0), (120.0, 10.0), (120.0, 60.0), (20.0, 60.0))
    item = LabelledObject("Car", BOX.box, outline=outline)

    assert numbers(label_line(task, item, 0, SIZE)) == pytest.approx([0, 0.1, 0.1, 0.6, 0.1, 0.6, 0.6, 0.1, 0.6])


def test_a_pose_line_marks_annotated_keypoints_visible_and_missing_ones_zero() -> None:
    item = LabelledObject("Person", BOX.box, keypoints=((70.0, 10.0), None))

    assert numbers(label_line("pose", item, 0, SIZE)) == pytest.approx([0, 0.35, 0.35, 0.5, 0.5, 0.35, 0.1, 2, 0, 0, 0])


def test_a_label_file_indexes_classes_by_the_plan_order_and_an_empty_one_is_a_negative_example() -> None:
    objects = [BOX, LabelledObject("Person", (0.0, 0.0, 200.0, 100.0))]

    text = label_file_text("detect", objects, ("Person", "Car"), SIZE)

    assert [line.split()[0] for line in text.splitlines()] == ["1", "0"]
    assert label_file_text("detect", [], ("Person", "Car"), SIZE) == ""


def test_data_yaml_names_the_splits_and_classes_and_gives_pose_its_keypoint_shape(tmp_path: Path) -> None:
    plain = yaml.safe_load(data_yaml(tmp_path, ["Car", "Person"]))
    pose = yaml.safe_load(data_yaml(tmp_path, ["Person"], keypoint_count=17))

    assert plain == {
        "path": str(tmp_path),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "Car", 1: "Person"},
    }
    assert pose["kpt_shape"] == [17, 3] and "flip_idx" not in pose
