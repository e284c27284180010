"""How a job fine-tunes: ultralytics' ``train()`` arguments, from the settings and the size of the data.

ultralytics' defaults are made for thousands of images from scratch; for a few dozen on top of a working model:
every batch is an optimizer step (``nbs = batch``); epochs follow from :data:`TARGET_STEPS` within
:data:`MIN_EPOCHS` and :data:`MAX_EPOCHS` unless ``TRAIN_EPOCHS`` is set; ``TRAIN_FREEZE`` (default: the layers
before the first one the head reads) keeps the old labels' features. Validation runs once, after the last epoch
(``val=False``): the gate scores the result itself, and picking a "best" epoch on its val images would flatter it.

Example:
    >>> recipe_for(BackendSettings(), train_images=15, layers_before_head_inputs=15).epochs  # doctest: +SKIP
    20
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from label_studio_yolo.settings import BackendSettings

DEFAULT_IMGSZ = 640
"""Training image size when neither ``TRAIN_IMGSZ`` nor the starting weights say one (ultralytics' own default)."""

TARGET_STEPS = 80
"""Optimizer steps a job aims at when ``TRAIN_EPOCHS`` is unset."""

MIN_EPOCHS = 8
"""Fewest epochs of a job when ``TRAIN_EPOCHS`` is unset (large data: every image seen this often)."""

MAX_EPOCHS = 40
"""Most epochs of a job when ``TRAIN_EPOCHS`` is unset (tiny data)."""


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning arguments that depend on the settings and the data."""

    epochs: int
    imgsz: int
    batch: int
    freeze: int
    lr0: float

    def train_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ultralytics' ``YOLO.train()``."""
        return {
            **asdict(self),
            "nbs": self.batch,
            "optimizer": "AdamW",
            "warmup_epochs": 1,
            "cos_lr": True,
            "val": False,
            "cache": False,  # "ram" may make a seeded run vary (ultralytics warns); "disk" draws a progress bar
            "save": False,  # only the last epoch is kept: a checkpoint per epoch cost a YOLOv8s job 11 s of 200
        }


def recipe_for(
    settings: BackendSettings, train_images: int, layers_before_head_inputs: int, start_imgsz: int | None = None
) -> Recipe:
    """The recipe of a job with ``train_images`` training images, for a model whose head reads its first input from
    layer ``layers_before_head_inputs`` and was trained at ``start_imgsz``.

    Unless ``TRAIN_IMGSZ`` says otherwise, a job trains at the size its starting weights know: a version trained at
    another size serves at that size, where the old labels' features were never learnt (a people model trained at
    256 px kept Person at 0.874 fine-tuned at 256 and fell to 0.38 at 640).
    """
    batch = max(1, min(settings.train_batch, train_images))
    steps_per_epoch = math.ceil(train_images / batch)
    epochs = settings.train_epochs or min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch)))
    freeze = layers_before_head_inputs if settings.train_freeze is None else settings.train_freeze
    imgsz = settings.train_imgsz or start_imgsz or DEFAULT_IMGSZ
    return Recipe(epochs=epochs, imgsz=imgsz, batch=batch, freeze=freeze, lr0=settings.train_lr)
