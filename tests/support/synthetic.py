"""Synthetic images of coloured boxes with known ground truth, and tiny YOLO models trained on them.

The tests never download weights: they train their own models here. Two classes, ``red`` and ``blue``
filled rectangles on a noisy grey background, are easy enough that a yolo11n trained from scratch for a minute on
the CPU finds them with high confidence and tight boxes. The same drawings serve every task: boxes (detect), box
outlines (segment), the colour of the image (classify), the middles of each box's top and bottom edges (pose), and
rotated rectangles (obb).

Example:
    >>> boxes = draw_image(Path("img.png"), random.Random(0))
    >>> boxes[0].label
    'red'
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw

CLASS_NAMES: tuple[str, ...] = ("red", "blue")
"""Model class names, in class-id order."""

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {"red": (220, 30, 30), "blue": (30, 60, 220)}
"""Fill colour of each class."""

IMAGE_SIZE: tuple[int, int] = (192, 144)
"""Width and height of every synthetic image (not square on purpose: percent coordinates must use both)."""

TRAIN_IMGSZ = 192
"""Image size the tiny model is trained and served at."""

RECIPE_VERSION = 1
"""Bump when the images or the training change: cached models of another version are not reused."""

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
"""Models trained by this recipe and committed (a few MB each), so a test run need not spend minutes training them.
Regenerate with ``python -m tests.support.synthetic`` after changing the recipe."""

SHIPPED_RECIPES: tuple[dict[str, object], ...] = (
    {"epochs": 60},
    {"epochs": 60, "classes": ("red",)},
    {"epochs": 80, "task": "segment"},
    {"epochs": 15, "task": "classify"},
    {"epochs": 60, "task": "pose"},
    {"epochs": 100, "task": "obb"},
)
"""The ``train_tiny_model`` arguments of every shipped model."""


@dataclass(frozen=True)
class GroundTruthBox:
    """One drawn box in pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    label: str
    x0: int
    y0: int
    x1: int
    y1: int

    def iou(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Intersection over union with another pixel box."""
        ix = max(0.0, min(self.x1, x1) - max(self.x0, x0))
        iy = max(0.0, min(self.y1, y1) - max(self.y0, y0))
        inter = ix * iy
        union = (self.x1 - self.x0) * (self.y1 - self.y0) + (x1 - x0) * (y1 - y0) - inter
        return inter / union if union > 0 else 0.0

    def keypoints(self) -> list[tuple[float, float]]:
        """The pose task's keypoints in pixels, in :data:`KEYPOINT_NAMES` order."""
        middle = (self.x0 + self.x1) / 2
        return [(middle, float(self.y0)), (middle, float(self.y1))]


KEYPOINT_NAMES: tuple[str, ...] = ("top", "bottom")
"""The pose task's keypoints, in index order: the middles of a box's top and bottom edges."""


@dataclass(frozen=True)
class GroundTruthRotatedBox:
    """One drawn rotated rectangle in pixels: centre, size, and clockwise rotation in degrees (y points down)."""

    label: str
    cx: float
    cy: float
    width: float
    height: float
    angle: float

    def corners(self) -> list[tuple[float, float]]:
        """Corner points: top-left, top-right, bottom-right, bottom-left of the unrotated box, rotated."""
        cos, sin = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        half = [(-self.width / 2, -self.height / 2), (self.width / 2, -self.height / 2)]
        half += [(self.width / 2, self.height / 2), (-self.width / 2, self.height / 2)]
        return [(self.cx + dx * cos - dy * sin, self.cy + dx * sin + dy * cos) for dx, dy in half]


def _place_boxes(rng: random.Random, count: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping random boxes inside the image."""
    width, height = IMAGE_SIZE
    placed: list[tuple[int, int, int, int]] = []
    while len(placed) < count:
        w, h = rng.randint(24, 64), rng.randint(24, 56)
        x0, y0 = rng.randint(2, width - w - 2), rng.randint(2, height - h - 2)
        box = (x0, y0, x0 + w, y0 + h)
        if all(box[2] + 4 < p[0] or p[2] + 4 < box[0] or box[3] + 4 < p[1] or p[3] + 4 < box[1] for p in placed):
            placed.append(box)
    return placed


def _background(rng: random.Random) -> Image.Image:
    """A noisy grey canvas of :data:`IMAGE_SIZE`."""
    width, height = IMAGE_SIZE
    noise = np.random.default_rng(rng.randint(0, 2**31)).integers(90, 160, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(noise, "RGB")


def draw_image(
    path: Path, rng: random.Random, labels: list[str] | None = None, classes: tuple[str, ...] = CLASS_NAMES
) -> list[GroundTruthBox]:
    """Draw one image with 1-3 boxes of ``classes`` (or one box per given label) and return its ground truth."""
    image, labels = _background(rng), labels or [rng.choice(classes) for _ in range(rng.randint(1, 3))]
    draw = ImageDraw.Draw(image)
    truth = []
    for label, (x0, y0, x1, y1) in zip(labels, _place_boxes(rng, len(labels)), strict=True):
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=CLASS_COLOURS[label])
        truth.append(GroundTruthBox(label, x0, y0, x1, y1))
    image.save(path)
    return truth


def draw_rotated_image(
    path: Path, rng: random.Random, labels: list[str] | None = None, classes: tuple[str, ...] = CLASS_NAMES
) -> list[GroundTruthRotatedBox]:
    """Draw one image with 1-3 rotated rectangles (0-80 degrees) and return their ground truth."""
    image, labels = _background(rng), labels or [rng.choice(classes) for _ in range(rng.randint(1, 3))]
    draw = ImageDraw.Draw(image)
    truth: list[GroundTruthRotatedBox] = []
    width, height = IMAGE_SIZE
    for label in labels:
        for _attempt in range(200):
            w, h = rng.randint(36, 70), rng.randint(14, 26)
            radius = math.hypot(w, h) / 2
            cx, cy = rng.uniform(radius + 2, width - radius - 2), rng.uniform(radius + 2, height - radius - 2)
            if all(math.hypot(cx - t.cx, cy - t.cy) > radius + math.hypot(t.width, t.height) / 2 + 3 for t in truth):
                box = GroundTruthRotatedBox(label, cx, cy, w, h, rng.uniform(0, 80))
                draw.polygon(box.corners(), fill=CLASS_COLOURS[label])
                truth.append(box)
                break
    image.save(path)
    return truth


def _label_line(box: GroundTruthBox, classes: tuple[str, ...], task: str) -> str:
    """One YOLO label line, normalised: a box (detect), its outline (segment), or a box and its keypoints (pose)."""
    width, height = IMAGE_SIZE
    x0, y0, x1, y1 = box.x0 / width, box.y0 / height, box.x1 / width, box.y1 / height
    if task == "segment":
        return f"{classes.index(box.label)} {x0:.6f} {y0:.6f} {x1:.6f} {y0:.6f} {x1:.6f} {y1:.6f} {x0:.6f} {y1:.6f}"
    line = f"{classes.index(box.label)} {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f}"
    if task == "pose":
        line += "".join(f" {x / width:.6f} {y / height:.6f} 2" for x, y in box.keypoints())
    return line


def _rotated_label_line(box: GroundTruthRotatedBox, classes: tuple[str, ...]) -> str:
    """One YOLO OBB label line: the class and four normalised corner points."""
    width, height = IMAGE_SIZE
    return f"{classes.index(box.label)} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in box.corners())


def write_classify_dataset(root: Path, classes: tuple[str, ...], train_count: int = 24, val_count: int = 8) -> Path:
    """An ImageFolder dataset (``split/class/*.png``): every box of an image has the image's class."""
    rng = random.Random(0)
    for split, count in (("train", train_count), ("val", val_count)):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                draw_image(root / split / name / f"{index:04d}.png", rng, labels=[name] * rng.randint(1, 2))
    return root


def write_yolo_dataset(
    root: Path,
    train_count: int = 48,
    val_count: int = 12,
    seed: int = 0,
    classes: tuple[str, ...] = CLASS_NAMES,
    task: str = "detect",
) -> Path:
    """Write an ultralytics detect, segment, pose or obb dataset (images, YOLO labels, data.yaml); returns the yaml."""
    rng = random.Random(seed)
    for split, count in (("train", train_count), ("val", val_count)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image_path = root / "images" / split / f"{index:04d}.png"
            if task == "obb":
                rotated = draw_rotated_image(image_path, rng, classes=classes)
                lines = [_rotated_label_line(box, classes) for box in rotated]
            else:
                lines = [_label_line(box, classes, task) for box in draw_image(image_path, rng, classes=classes)]
            (root / "labels" / split / f"{index:04d}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(classes))
    pose = f"kpt_shape: [{len(KEYPOINT_NAMES)}, 3]\nflip_idx: {list(range(len(KEYPOINT_NAMES)))}\n"
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n" + (pose if task == "pose" else "")
    )
    return data_yaml


def train_tiny_model(
    cache_dir: Path, epochs: int = 60, classes: tuple[str, ...] = CLASS_NAMES, task: str = "detect"
) -> Path:
    """Train (or reuse from ``cache_dir``) a yolo11n model of ``red``/``blue`` boxes and return its ``.pt``.

    ``task`` is ``detect`` (boxes), ``segment`` (box outlines as masks), ``classify`` (the colour of the image's
    boxes), ``pose`` (boxes with :data:`KEYPOINT_NAMES`) or ``obb`` (rotated rectangles).

    A model of this recipe version shipped in :data:`SHIPPED_MODELS` is returned as it is. Safe to call from
    several processes at once: one trains under a file lock, the others wait and reuse.
    """
    suffix = ("" if classes == CLASS_NAMES else "-" + "-".join(classes)) + ("" if task == "detect" else f"-{task}")
    name = f"tiny-boxes-v{RECIPE_VERSION}-{epochs}ep{suffix}.pt"
    if (SHIPPED_MODELS / name).is_file():
        return SHIPPED_MODELS / name
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / name
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=cache_dir) as work:
                best = _train(Path(work).resolve(), epochs, classes, task)
                os.replace(best, target)
    return target


MODEL_YAML = {
    "detect": "yolo11n.yaml",
    "segment": "yolo11n-seg.yaml",
    "classify": "yolo11n-cls.yaml",
    "pose": "yolo11n-pose.yaml",
    "obb": "yolo11n-obb.yaml",
}
"""Architecture each task trains from scratch."""


def _train(work: Path, epochs: int, classes: tuple[str, ...], task: str) -> Path:
    """Train in ``work`` and return the best weights' path there."""
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    # select_device() drops torch to cpu_count - 1 threads (1 on a 2-core CI machine): train on every core.
    torch_utils.NUM_THREADS = max(1, os.cpu_count() or 1)
    if task == "classify":
        data = write_classify_dataset(work / "dataset", classes)
    else:
        data = write_yolo_dataset(work / "dataset", classes=classes, task=task)
    model = YOLO(MODEL_YAML[task])
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=TRAIN_IMGSZ,
        batch=16,
        workers=0,
        amp=False,
        device="cpu",
        project=str(work / "runs"),
        name="train",
        exist_ok=True,
        plots=False,
        verbose=False,
        seed=0,
        deterministic=True,
        mosaic=1.0,
        close_mosaic=10,
    )
    return work / "runs" / "train" / "weights" / "best.pt"


def _ship_all() -> None:
    """Train every model of :data:`SHIPPED_RECIPES` that is not shipped yet into :data:`SHIPPED_MODELS`."""
    SHIPPED_MODELS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-models-") as cache:
        for recipe in SHIPPED_RECIPES:
            trained = train_tiny_model(Path(cache), **recipe)  # type: ignore[arg-type]
            if trained.parent != SHIPPED_MODELS:
                os.replace(trained, SHIPPED_MODELS / trained.name)
                print(f"shipped {SHIPPED_MODELS / trained.name}")


if __name__ == "__main__":
    _ship_all()
