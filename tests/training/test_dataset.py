"""Training data for every YOLO task: annotations as Label Studio exports them become the right ultralytics dataset.

Images are synthetic with known ground truth (``tests/support/synthetic.py``); annotations are built the way Label
Studio stores them (percent geometry, rotation about the top-left corner, brush RLE from label-studio-sdk's
``mask2rle``, keypoints with ``parentID``). The geometry tests read the written label files back and compare them
with the ground truth. The job tests run the whole job minus the Label Studio export (``train_annotated``: dataset,
one epoch of fine-tuning from the matching tiny model at a tiny image size, old-vs-new comparison, stored version),
which proves that ultralytics accepts each dataset.
"""

from __future__ import annotations

import base64
import itertools
import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle
from ultralytics import YOLO

from conftest import MODEL_CACHE
from label_studio_yolo.geometry import ImageSize, rectangle_corners, rotated_rectangle_percent
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.annotations import annotated_tasks
from label_studio_yolo.training.dataset import Dataset, task_labels, write_dataset
from label_studio_yolo.training.job import TrainingError, train_annotated
from label_studio_yolo.training.plan import TrainingPlan, plan_training
from label_studio_yolo.training.split import split_tasks
from label_studio_yolo.versions import VersionStore
from tests.support.synthetic import (
    IMAGE_SIZE,
    SHIPPED_RECIPES,
    GroundTruthBox,
    GroundTruthRotatedBox,
    draw_image,
    draw_rotated_image,
    train_tiny_model,
)

W, H = IMAGE_SIZE
SIZE = ImageSize(W, H)
LABELS = {"red": "Red box", "blue": "Blue"}
CHOICES = {"red": "Red", "blue": "Blue"}
TIGHT = 2e-6  # label files hold 6 decimals
REGION_IDS = itertools.count()
TASK_MODELS = {
    str(recipe.get("task", "detect")): int(recipe["epochs"])  # type: ignore[call-overload]
    for recipe in SHIPPED_RECIPES
    if "classes" not in recipe
}
"""Epochs of each shipped tiny model (tests/support/synthetic.py), by task."""

BOX_LABELS = '<Label value="Red box" predicted_values="red"/><Label value="Blue"/>'
CONFIGS = {
    "detect": f'<RectangleLabels name="label" toName="image">{BOX_LABELS}</RectangleLabels>',
    "obb": f'<RectangleLabels name="label" toName="image">{BOX_LABELS}</RectangleLabels>',
    "polygon": f'<PolygonLabels name="outline" toName="image">{BOX_LABELS}</PolygonLabels>',
    "brush": f'<BrushLabels name="mask" toName="image">{BOX_LABELS}</BrushLabels>',
    "classify": '<Choices name="colour" toName="image"><Choice value="Red" predicted_values="red"/>'
    '<Choice value="Blue" predicted_values="blue"/><Choice value="Green"/></Choices>',
    "pose": f'<RectangleLabels name="label" toName="image">{BOX_LABELS}</RectangleLabels>'
    '<KeyPointLabels name="points" toName="image"><Label value="Top" model_index="0"/>'
    '<Label value="Bottom" model_index="2"/></KeyPointLabels>',
    "pose-only": '<KeyPointLabels name="points" toName="image"><Label value="Top"/><Label value="Bottom"/>'
    "</KeyPointLabels>",
}
"""The training part of each project's config."""


OWN_MODELS = (
    '<RectangleLabels name="own_boxes" toName="image" model_path="other.pt"><Label value="Car"/></RectangleLabels>'
    '<Choices name="own_kind" toName="image" model_path="other-cls.pt"><Choice value="Cat"/></Choices>'
)
"""Tags with their own weights, first in every config: training must pass them over."""


def label_config(name: str) -> str:
    return f'<View><Image name="image" value="$image"/>{OWN_MODELS}{CONFIGS[name]}</View>'


def region(kind: str, from_name: str, value: dict[str, Any], label: str | None, **extra: Any) -> dict[str, Any]:
    """One result item as Label Studio stores it."""
    labels = {kind: [label]} if label is not None else {}
    item = {
        "id": extra.pop("id", f"region{next(REGION_IDS)}"),
        "from_name": from_name,
        "to_name": "image",
        "type": kind,
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": {**value, **labels},
    }
    return {**item, **extra}


def box_region(box: GroundTruthBox, **extra: Any) -> dict[str, Any]:
    value = {"x": box.x0 / W * 100, "y": box.y0 / H * 100, "width": (box.x1 - box.x0) / W * 100}
    value |= {"height": (box.y1 - box.y0) / H * 100, "rotation": 0}
    return region("rectanglelabels", "label", value, LABELS[box.label], **extra)


def rotated_region(box: GroundTruthRotatedBox) -> dict[str, Any]:
    """A rotated box as the backend predicts it (and Label Studio stores it): corner, size, rotation in degrees."""
    value = rotated_rectangle_percent(box.cx, box.cy, box.width, box.height, math.radians(box.angle), SIZE)
    return region("rectanglelabels", "label", value, LABELS[box.label])


def polygon_region(box: GroundTruthBox) -> dict[str, Any]:
    corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
    points = [[x / W * 100, y / H * 100] for x, y in corners]
    return region("polygonlabels", "outline", {"points": points, "closed": True}, LABELS[box.label])


def brush_region(boxes: list[GroundTruthBox]) -> dict[str, Any]:
    """One brush region painting every box in ``boxes`` (each box is one blob)."""
    mask = np.zeros((H, W), dtype=np.uint8)
    for box in boxes:
        mask[box.y0 : box.y1, box.x0 : box.x1] = 255
    return region("brushlabels", "mask", {"format": "rle", "rle": mask2rle(mask)}, LABELS[boxes[0].label])


def keypoint_region(label: str, point: tuple[float, float], parent: str | None = None) -> dict[str, Any]:
    value = {"x": point[0] / W * 100, "y": point[1] / H * 100, "width": 0.5}
    extra = {"parentID": parent} if parent else {}
    return region("keypointlabels", "points", value, label, **extra)


def choice_region(*choices: str) -> dict[str, Any]:
    return region("choices", "colour", {"choices": list(choices)}, None)


def task(task_id: int, image: str, result: list[dict[str, Any]]) -> dict[str, Any]:
    """A task with its annotation, as label-studio-sdk lists it (plus an older cancelled annotation)."""
    annotations = [
        {"id": task_id * 10, "result": result, "was_cancelled": False, "updated_at": "2025-01-02T00:00:00Z"},
        {"id": task_id * 10 + 1, "result": [], "was_cancelled": True, "updated_at": "2025-01-03T00:00:00Z"},
    ]
    return {"id": task_id, "data": {"image": image}, "annotations": annotations}


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def local_file(path: Path) -> str:
    return f"/data/local-files/?d={path.name}"


def image_value(path: Path, index: int) -> str:
    """Alternate data: URIs and Label Studio local-files paths (read from LOCAL_FILES_DOCUMENT_ROOT)."""
    return data_uri(path) if index % 2 else local_file(path)


def write(tasks: list[dict[str, Any]], config: str, task_kind: str, root: Path) -> tuple[Dataset, TrainingPlan]:
    plan = plan_training(config, task_kind, 0.5, "base.pt")
    annotated = annotated_tasks(tasks, "image", plan.from_names, require_region=task_kind == "classify")
    loader = ImageLoader(MediaSettings(document_root=root / "images"))
    split_of = split_tasks(task_labels(plan, annotated), val_fraction=0.25, min_val=1)
    return write_dataset(annotated, loader, plan, root / "dataset", split_of), plan


def label_lines(dataset: Dataset, task_id: int) -> list[list[float]]:
    (path,) = dataset.root.glob(f"labels/*/{task_id}.txt")
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def box_size(box: GroundTruthBox) -> list[float]:
    return [(box.x1 - box.x0) / W, (box.y1 - box.y0) / H]


def normalised(points: list[tuple[float, float]]) -> list[float]:
    return [c for x, y in points for c in (x / W, y / H)]


# ---------------------------------------------------------------------------------------------------- projects


def boxes_project(folder: Path, count: int, config: str, seed: int) -> list[tuple[dict[str, Any], list[Any]]]:
    """``count`` tasks of one red and one blue box each, with their annotation per config, and their truth."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(count):
        path = folder / "images" / f"{config}{index:02d}.png"
        if config == "obb":
            truth: list[Any] = draw_rotated_image(path, rng, labels=["red", "blue"])
        elif config == "classify":  # one colour per image: the image's class
            truth = draw_image(path, rng, labels=[("red", "blue")[index % 2]] * rng.randint(1, 2))
        else:
            truth = draw_image(path, rng, labels=["red", "blue"])
        made.append((task(100 + index, image_value(path, index), annotation(config, truth, index)), truth))
    return made


def annotation(config: str, truth: list[Any], index: int) -> list[dict[str, Any]]:
    """The annotation a person makes for ``truth`` with ``config``'s tags."""
    if config == "obb":
        return [rotated_region(box) for box in truth]
    if config == "detect":
        return [box_region(box) for box in truth]
    if config == "polygon":
        return [polygon_region(box) for box in truth]
    if config == "brush":
        return [brush_region([box]) for box in truth]
    if config == "classify":
        return [choice_region(CHOICES[truth[0].label])]
    regions = [] if config == "pose-only" else [box_region(box, id=f"box{index}-{n}") for n, box in enumerate(truth)]
    for n, box in enumerate(truth[: 1 if config == "pose-only" else 2]):
        top, bottom = box.keypoints()
        regions.append(keypoint_region("Top", top))  # found by the box that contains it
        regions.append(keypoint_region("Bottom", bottom, parent=f"box{index}-{n}"))  # found by its parentID
    return regions


# ----------------------------------------------------------------------------------------------- geometry tests


def test_detect_labels_are_the_boxes_and_rotated_boxes_their_bounds(tmp_path) -> None:
    made = boxes_project(tmp_path, 4, "detect", seed=1)
    rotated_path = tmp_path / "images" / "rotated.png"
    rotated = draw_rotated_image(rotated_path, random.Random(5), labels=["blue"])
    tasks = [t for t, _ in made] + [task(200, data_uri(rotated_path), [rotated_region(rotated[0])])]
    dataset, _ = write(tasks, label_config("detect"), "detect", tmp_path)

    assert sorted(dataset.train_ids + dataset.val_ids) == [100, 101, 102, 103, 200] and dataset.val_ids
    for made_task, truth in made:
        expected = [
            [["red", "blue"].index(b.label), (b.x0 + b.x1) / 2 / W, (b.y0 + b.y1) / 2 / H, *box_size(b)] for b in truth
        ]
        assert label_lines(dataset, made_task["id"]) == [pytest.approx(e, abs=TIGHT) for e in expected]
    xs, ys = zip(*rotated[0].corners(), strict=True)
    bounds = [1, (min(xs) + max(xs)) / 2 / W, (min(ys) + max(ys)) / 2 / H, (max(xs) - min(xs)) / W]
    assert label_lines(dataset, 200) == [pytest.approx([*bounds, (max(ys) - min(ys)) / H], abs=TIGHT)]
    assert "kpt_shape" not in (dataset.data).read_text()


@pytest.mark.parametrize("degrees", [0, 17.5, 90, 135, 200, 271, 359])
def test_a_rotated_rectangle_round_trips_exactly_through_label_studio_percent(degrees: float) -> None:
    box = GroundTruthRotatedBox("red", 100.0, 70.0, 50.0, 20.0, degrees)
    stored = rotated_rectangle_percent(box.cx, box.cy, box.width, box.height, math.radians(degrees), SIZE)
    corners = rectangle_corners(stored["x"], stored["y"], stored["width"], stored["height"], stored["rotation"], SIZE)
    assert [c for point in corners for c in point] == pytest.approx(
        [c for point in box.corners() for c in point], abs=1e-9
    )


def test_obb_labels_are_the_rotated_corners_exactly(tmp_path) -> None:
    made = boxes_project(tmp_path, 4, "obb", seed=2)
    dataset, _ = write([t for t, _ in made], label_config("obb"), "obb", tmp_path)

    for made_task, truth in made:
        expected = [[["red", "blue"].index(b.label), *normalised(b.corners())] for b in truth]
        assert label_lines(dataset, made_task["id"]) == [pytest.approx(e, abs=TIGHT) for e in expected]
    first = dataset.val_images[0]
    truth = next(boxes for made_task, boxes in made if made_task["id"] == int(first.path.stem))
    for item, box in zip(first.objects, truth, strict=True):
        xs, ys = zip(*box.corners(), strict=True)
        assert item.label == LABELS[box.label]
        assert item.box == pytest.approx((min(xs), min(ys), max(xs), max(ys)), abs=1e-9)


def test_segment_labels_are_polygons_and_brush_outlines(tmp_path) -> None:
    polygons = boxes_project(tmp_path / "polygon", 3, "polygon", seed=3)
    dataset, _ = write([t for t, _ in polygons], label_config("polygon"), "segment", tmp_path / "polygon")
    for made_task, truth in polygons:
        expected = [
            [["red", "blue"].index(b.label), *normalised([(b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1)])]
            for b in truth
        ]
        assert label_lines(dataset, made_task["id"]) == [pytest.approx(e, abs=TIGHT) for e in expected]

    brushes = boxes_project(tmp_path / "brush", 3, "brush", seed=4)
    blobs = [GroundTruthBox("red", 2, 2, 10, 8), GroundTruthBox("red", 180, 130, 190, 142)]
    brushes[0][0]["annotations"][0]["result"].append(brush_region(blobs))
    dataset, _ = write([t for t, _ in brushes], label_config("brush"), "segment", tmp_path / "brush")
    for index, (made_task, truth) in enumerate(brushes):
        lines = label_lines(dataset, made_task["id"])
        if index == 0:
            assert len(lines) == 4, "one polygon per blob: the two-blob region gives two objects"
            lines = lines[:2] + sorted(lines[2:], key=lambda line: line[1])
        for line, box in zip(lines, truth + blobs if index == 0 else truth, strict=True):
            # OpenCV outlines through the edge pixels' centres: the far edges are one pixel in
            assert bounds_of(line) == pytest.approx(
                [["red", "blue"].index(box.label), box.x0 / W, box.y0 / H, (box.x1 - 1) / W, (box.y1 - 1) / H],
                abs=TIGHT,
            )


def test_polygons_and_brush_masks_in_one_project_both_train(tmp_path) -> None:
    # Only the first learning tag used to train: a task annotated with the brush alone became an empty negative.
    polygons = boxes_project(tmp_path, 2, "polygon", seed=3)
    brushes = boxes_project(tmp_path, 2, "brush", seed=4)
    brushes = [({**made_task, "id": made_task["id"] + 50}, truth) for made_task, truth in brushes]
    config = f"<View><Image name='image' value='$image'/>{CONFIGS['polygon']}{CONFIGS['brush']}</View>"

    dataset, plan = write([t for t, _ in polygons + brushes], config, "segment", tmp_path)

    assert plan.from_names == {"outline", "mask"} and plan.class_names == ("Red box", "Blue")
    for made_task, truth in polygons + brushes:
        lines = label_lines(dataset, made_task["id"])
        assert sorted(line[0] for line in lines) == sorted(["red", "blue"].index(b.label) for b in truth)


def bounds_of(line: list[float]) -> list[float]:
    xs, ys = line[1::2], line[2::2]
    return [line[0], min(xs), min(ys), max(xs), max(ys)]


def test_classify_writes_image_folders_with_every_class_in_every_split(tmp_path) -> None:
    made = boxes_project(tmp_path, 6, "classify", seed=5)
    tasks = [t for t, _ in made]
    tasks.append(task(300, image_value(tmp_path / "images" / "classify00.png", 1), []))  # no choice: not a sample
    tasks.append(task(301, image_value(tmp_path / "images" / "classify01.png", 1), [choice_region("Purple")]))
    tasks.append(task(302, "data:image/png;base64,bm90IGFuIGltYWdl", [choice_region("Red")]))
    dataset, plan = write(tasks, label_config("classify"), "classify", tmp_path)

    assert plan.class_names == ("Red", "Blue", "Green")
    assert dataset.data == dataset.root
    assert set(dataset.skipped) == {301, 302}
    assert "Purple" in dataset.skipped[301] and "not a readable image" in dataset.skipped[302]
    assert 300 not in dataset.train_ids + dataset.val_ids
    for split in ("train", "val"):
        assert sorted(p.name for p in (dataset.root / split).iterdir()) == ["Blue", "Green", "Red"]
    assert not any((dataset.root / "train" / "Green").iterdir()), "an empty class tmp_path"
    for made_task, truth in made:
        (path,) = dataset.root.glob(f"*/*/{made_task['id']}.png")
        assert path.parent.name == CHOICES[truth[0].label]
    assert {image.label for image in dataset.val_images} <= {"Red", "Blue"}


def test_pose_keypoints_go_to_their_box_at_their_index(tmp_path) -> None:
    made = boxes_project(tmp_path, 4, "pose", seed=6)
    made[0][0]["annotations"][0]["result"].append(keypoint_region("Elbow", (5.0, 5.0)))  # not a config label
    red, blue = made[1][1]
    inside_blue = ((blue.x0 + blue.x1) / 2, (blue.y0 + blue.y1) / 2)
    parented = [box_region(red, id="red"), box_region(blue), keypoint_region("Top", inside_blue, parent="red")]
    tasks = [t for t, _ in made] + [task(150, made[1][0]["data"]["image"], parented)]
    dataset, plan = write(tasks, label_config("pose"), "pose", tmp_path)

    assert plan.keypoint_count == 3
    assert "kpt_shape:\n- 3\n- 3" in dataset.data.read_text()
    red_line, blue_line = label_lines(dataset, 150)
    assert red_line[5:] == pytest.approx([inside_blue[0] / W, inside_blue[1] / H, 2, 0, 0, 0, 0, 0, 0], abs=TIGHT)
    assert blue_line[5:] == [0] * 9, "parentID wins over the box that contains the point"
    for made_task, truth in made:
        expected = []
        for b in truth:
            (tx, ty), (bx, by) = b.keypoints()
            box = [(b.x0 + b.x1) / 2 / W, (b.y0 + b.y1) / 2 / H, (b.x1 - b.x0) / W, (b.y1 - b.y0) / H]
            expected.append([["red", "blue"].index(b.label), *box, tx / W, ty / H, 2, 0, 0, 0, bx / W, by / H, 2])
        assert label_lines(dataset, made_task["id"]) == [pytest.approx(e, abs=TIGHT) for e in expected]


def test_pose_without_rectangles_makes_one_object_around_the_keypoints(tmp_path) -> None:
    made = boxes_project(tmp_path, 2, "pose-only", seed=7)
    dataset, plan = write([t for t, _ in made], label_config("pose-only"), "pose", tmp_path)

    assert plan.class_names == ("object",)
    for made_task, truth in made:
        (tx, ty), (bx, by) = truth[0].keypoints()
        margin = max(0.1 * (by - ty), 4.0)
        (line,) = label_lines(dataset, made_task["id"])
        y0, y1 = max(ty - margin, 0), min(by + margin, H)
        box = [tx / W, (y0 + y1) / 2 / H, 2 * margin / W, (y1 - y0) / H]
        assert line == pytest.approx([0, *box, tx / W, ty / H, 2, bx / W, by / H, 2], abs=TIGHT)


def test_a_config_without_a_control_for_the_base_model_task_is_a_clear_error(tmp_path, tiny_weights) -> None:
    (tmp_path / "models").mkdir()
    shutil.copy2(tiny_weights, tmp_path / "models" / "base.pt")
    settings = BackendSettings(model_root=tmp_path / "models", model_path="base.pt", model_dir=tmp_path / "versions")
    tasks = [t for t, _ in boxes_project(tmp_path, 2, "classify", seed=8)]

    with pytest.raises(TrainingError) as raised:
        train_annotated(1, label_config("classify"), tasks, settings)
    message = str(raised.value)
    assert "base.pt, a detect model" in message and "<Choices name='colour'>" in message
    assert '<RectangleLabels name="label" toName="image">' in message, "XML that would train it"
    assert "<RectangleLabels name='own_boxes'> with its own model_path" in message, "why that one does not count"
    assert message.endswith("MODEL_PATH=yolo11n-cls.pt (classify)"), "the model that would learn from the config"
    assert not (tmp_path / "versions").exists()


# --------------------------------------------------------------------------------------------------- job tests

JOBS = {
    "detect": ("detect", ["Red box", "Blue"]),
    "segment": ("brush", ["Red box", "Blue"]),
    "classify": ("classify", ["Red", "Blue", "Green"]),
    "pose": ("pose", ["Red box", "Blue"]),
    "obb": ("obb", ["Red box", "Blue"]),
}
"""YOLO task -> the config its project uses and the classes a version trained from it has."""
JOB_TASKS = 6


@pytest.mark.parametrize("yolo_task", list(JOBS))
def test_the_job_fine_tunes_compares_and_stores_each_task(yolo_task: str, tmp_path: Path) -> None:
    config, classes = JOBS[yolo_task]
    (tmp_path / "models").mkdir()
    base = train_tiny_model(MODEL_CACHE, epochs=TASK_MODELS[yolo_task], task=yolo_task)
    shutil.copy2(base, tmp_path / "models" / "base.pt")
    tasks = [t for t, _ in boxes_project(tmp_path, JOB_TASKS, config, seed=10)]
    tasks.append(task(400, "data:image/png;base64,bm90IGFuIGltYWdl", tasks[0]["annotations"][0]["result"]))
    settings = BackendSettings(
        model_root=tmp_path / "models",
        model_path="base.pt",
        model_dir=tmp_path / "versions",
        local_files_document_root=tmp_path / "images",
        train_epochs=1,
        train_imgsz=64,
        train_batch=4,
        train_val_fraction=0.25,
        torch_threads=2,
        train_publish_policy="always",
        inference_runtime="openvino",
    )

    result = train_annotated(9, label_config(config), tasks, settings)

    metric = "accuracy" if yolo_task == "classify" else "ap50"
    assert (result["task"], result["metric"], result["published"]) == (yolo_task, metric, True)
    version = VersionStore(tmp_path / "versions").current(9)
    assert version is not None and version.name == result["version"]
    meta = version.meta
    assert (meta["task"], meta["metric"], meta["classes"]) == (yolo_task, metric, classes)
    print(f"{yolo_task}: {metric} {meta['gate']}")
    # Scored at the served threshold, where the tiny segment base finds half of the boxes; an unmapped class scores 0.
    # pose is judged by keypoints: the base has two, and the config reads Bottom at model_index 2, which it lacks.
    if yolo_task != "pose":
        assert meta["gate"]["old_mean"] >= 0.4, "the base scored through the predicted_values (red -> Red box)"
    assert 0.0 <= meta["gate"]["new_mean"] <= 1.0
    assert set(meta["gate"]["labels"]) <= set(classes) and meta["gate"]["labels"], "every val label scored"
    assert list(meta["skipped_tasks"]) == ["400"] and "not a readable image" in meta["skipped_tasks"]["400"]
    assert sorted(meta["train_tasks"] + meta["val_tasks"]) == list(range(100, 100 + JOB_TASKS))
    assert (version.path / "results.png").is_file() and (version.path / "results.csv").is_file()
    assert any(version.path.glob("*_openvino_model/*.xml")), "the worker exports the version for serving"
    trained = YOLO(str(version.weights))
    assert trained.task == yolo_task
    assert sorted(trained.names.values()) == sorted(classes)
    if yolo_task == "pose":
        assert list(trained.model.kpt_shape) == [3, 3], "Top at index 0, Bottom at index 2"
