"""A new version's starting weights: the served model with a head for the project's labels that keeps what it knew.

When the project's labels differ from the served model's classes, ultralytics would start the head's class rows
from scratch and the model would relearn every old label from a few boxes. Here each label's rows start from the
old rows of the classes it maps (``predicted_values``, or by name); only labels that map no class start afresh.

Example:
    >>> start = carry_over(Path("yolov8s.pt"), ("Person", "Cup"), plan.base_labels(...), Path("work"))
    >>> start.sources                                                       # doctest: +SKIP
    {'Person': ['person'], 'Cup': []}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from label_studio_yolo.label_config import LabelMap

logger = logging.getLogger(__name__)

START_FILE = "start.pt"
"""The carried-over starting weights, written into the job's work folder."""


@dataclass(frozen=True)
class StartWeights:
    """The weights a job fine-tunes, per label the old classes its head rows start from, and how many leading layers
    come before the head's first input (the backbone and the neck's top-down path)."""

    path: Path
    sources: dict[str, list[str]]
    layers_before_head_inputs: int


def carry_over(weights: Path, class_names: Sequence[str], labels: LabelMap, folder: Path) -> StartWeights:
    """The weights to fine-tune for ``class_names``, written into ``folder`` when the head changes.

    ``labels`` maps the old model's classes to labels as it is served. The path is ``weights`` itself when the old
    classes already are ``class_names`` in order (ultralytics then loads every tensor).
    """
    from ultralytics.nn.tasks import torch_safe_load

    checkpoint, _ = torch_safe_load(str(weights))
    old = (checkpoint.get("ema") or checkpoint["model"]).float()
    old_names = [str(name) for name in dict(old.names).values()]
    sources = {label: [name for name in old_names if labels.label_for(name) == label] for label in class_names}
    before_inputs = _layers_before_head_inputs(old)
    if old_names == list(class_names):
        return StartWeights(weights, sources, before_inputs)
    new = type(old)(old.yaml, nc=len(class_names), verbose=False)
    new.load(old, verbose=False)
    if not _copy_class_rows(old, new, [[old_names.index(name) for name in sources[label]] for label in class_names]):
        logger.warning("%s: no classification head found to carry over; new labels start from scratch", weights.name)
    new.names = dict(enumerate(class_names))
    new.args = getattr(old, "args", {})
    path = folder / START_FILE
    torch.save({**_metadata(checkpoint), "model": new, "ema": None, "optimizer": None}, path)
    return StartWeights(path, sources, before_inputs)


def _layers_before_head_inputs(model: nn.Module) -> int:
    """Index of the first layer the head reads (YOLOv8: 15 of 22; YOLO11: 16 of 23): what comes before it is the
    backbone and the neck's top-down path."""
    head: Any = model.model[-1]  # type: ignore[index]
    inputs = head.f if isinstance(head.f, list) else [head.f]
    return int(min(index if index >= 0 else head.i + index for index in inputs))


def _copy_class_rows(old: nn.Module, new: nn.Module, rows_of: list[list[int]]) -> bool:
    """Set each new class's output row (weights and bias) to the mean of its old classes' rows; False if no head.

    The mean, because a label fed by several classes (``predicted_values="Normal,Fall"``) should start as a detector
    of all of them; fine-tuning then sharpens it. A label that maps no class keeps ultralytics' fresh row.
    """
    pairs = list(zip(_class_layers(old), _class_layers(new), strict=True))
    with torch.no_grad():
        for old_layer, new_layer in pairs:
            for index, rows in enumerate(rows_of):
                if rows:
                    new_layer.weight[index] = old_layer.weight[rows].mean(dim=0)
                    if new_layer.bias is not None and old_layer.bias is not None:
                        new_layer.bias[index] = old_layer.bias[rows].mean(dim=0)
    return bool(pairs)


def _class_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The layers whose output rows are the classes: each scale's last class convolution (detect, segment, pose,
    obb; both heads of end-to-end models), or the classifier's linear layer."""
    head: Any = model.model[-1]  # type: ignore[index]
    if isinstance(getattr(head, "linear", None), nn.Linear):
        return [head.linear]
    layers: list[nn.Conv2d | nn.Linear] = []
    for name in ("cv3", "one2one_cv3"):
        layers += [branch[-1] for branch in getattr(head, name, None) or []]
    return [layer for layer in layers if isinstance(layer, nn.Conv2d)]


def _metadata(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What ultralytics keeps beside the model in a checkpoint (its train arguments, version, date)."""
    return {key: value for key, value in checkpoint.items() if key not in ("model", "ema", "optimizer")}
