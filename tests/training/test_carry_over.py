"""A new version starts from what the served model knew: each label's head rows come from the classes it maps."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO

from conftest import MODEL_CACHE
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.training.carry_over import carry_over
from tests.support.synthetic import TRAIN_IMGSZ, draw_image, train_tiny_model

RED_BLUE = LabelMap({"red": "Red box", "blue": "Blue"})


def boxes(weights: Path, image: Path) -> list[tuple[str, float, list[int]]]:
    result = YOLO(str(weights)).predict(str(image), imgsz=TRAIN_IMGSZ, conf=0.25, verbose=False)[0]
    assert result.boxes is not None
    return [
        (result.names[int(c)], round(float(s), 4), [round(v) for v in xyxy.tolist()])
        for c, s, xyxy in zip(result.boxes.cls, result.boxes.conf, result.boxes.xyxy, strict=True)
    ]


def test_old_labels_are_found_as_before_under_their_new_names_and_new_labels_start_empty(tmp_path: Path) -> None:
    base = train_tiny_model(MODEL_CACHE, epochs=60)
    image = tmp_path / "boxes.png"
    draw_image(image, random.Random(3))

    start = carry_over(base, ("Blue", "Green", "Red box"), RED_BLUE, tmp_path)

    assert start.sources == {"Blue": ["blue"], "Green": [], "Red box": ["red"]}
    assert start.path != base and start.layers_before_head_inputs == 16, "YOLO11's head reads layers 16, 19, 22"
    before = [(RED_BLUE.label_for(name), score, box) for name, score, box in boxes(base, image)]
    assert before, "the base model finds the boxes"
    assert boxes(start.path, image) == before, "same boxes, same scores, the project's names"


def test_a_label_fed_by_several_classes_starts_from_their_mean(tmp_path: Path) -> None:
    # As <Label value="Person" predicted_values="Normal,Fall"/> over a model with classes Normal and Fall.
    base = train_tiny_model(MODEL_CACHE, epochs=60)
    start = carry_over(base, ("Box",), LabelMap({"red": "Box", "blue": "Box"}), tmp_path)
    old_head = YOLO(str(base)).model.model[-1]
    new_head = YOLO(str(start.path)).model.model[-1]
    for old, new in zip(old_head.cv3, new_head.cv3, strict=True):
        assert torch.allclose(new[-1].weight[0], old[-1].weight[:2].mean(dim=0))
        assert torch.allclose(new[-1].bias[0], old[-1].bias[:2].mean(dim=0))


def test_weights_whose_classes_already_are_the_labels_are_used_as_they_are(tmp_path: Path) -> None:
    base = train_tiny_model(MODEL_CACHE, epochs=60)
    start = carry_over(base, ("red", "blue"), LabelMap({"red": "red", "blue": "blue"}), tmp_path)
    assert start.path == base and not list(tmp_path.iterdir())


@pytest.mark.parametrize("task", ["classify", "segment", "pose", "obb"])
def test_every_task_head_carries_its_classes_over(task: str, tmp_path: Path) -> None:
    epochs = {"classify": 15, "segment": 80, "pose": 60, "obb": 100}[task]
    base = train_tiny_model(MODEL_CACHE, epochs=epochs, task=task)
    start = carry_over(base, ("New", "Red box"), LabelMap({"red": "Red box"}), tmp_path)
    old, new = YOLO(str(base)).model, YOLO(str(start.path)).model
    assert new.names == {0: "New", 1: "Red box"} and YOLO(str(start.path)).task == task
    red = list(old.names.values()).index("red")
    old_layer = old.model[-1].linear if task == "classify" else old.model[-1].cv3[0][-1]
    new_layer = new.model[-1].linear if task == "classify" else new.model[-1].cv3[0][-1]
    assert torch.equal(new_layer.weight[1], old_layer.weight[red])
