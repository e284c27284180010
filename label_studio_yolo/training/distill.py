"""Keep what the served model knew: its class scores for the labels it already predicts teach the new version.

A fine-tune on a handful of images forgets the old labels, even where they are annotated (docs/training.md has the
numbers). Learning without forgetting
(Li and Hoiem, 2016) adds a second target beside the annotations: on every training batch, as augmented, the
starting model (the served version with the carried-over head, :mod:`~label_studio_yolo.training.carry_over`)
scores each anchor for the old labels, and the new version is pulled toward those scores. New labels learn from
the annotations alone.

ultralytics has no hook for a second target (its ``distill_model`` matches the features of a larger teacher through
new projection layers, for all classes), so the task's own criterion is wrapped: the model's ``criterion`` attribute
is what ``model.loss()`` calls, and it is set before the first batch (``on_train_start``).

Example:
    >>> model.add_callback("on_train_start", distil_into(rows=[0], weight=1.0))          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional


class DistilledLoss:
    """The task's loss plus the distance of the old labels' anchor scores from the starting model's.

    The distance is the binary cross-entropy of the new version's logits against the starting model's
    probabilities, normalised as ultralytics normalises its class loss (by the mass of the targets) and scaled by
    its class gain, so that ``weight`` 1 makes the two targets count alike.
    """

    def __init__(self, criterion: Any, teacher: Teacher, rows: Sequence[int], weight: float) -> None:
        self.criterion = criterion
        self.teacher = teacher
        self.rows = list(rows)
        self.weight = weight

    def __getattr__(self, name: str) -> Any:
        # ultralytics calls the criterion's own methods through the wrapper (end-to-end heads' ``update()``).
        criterion = self.__dict__.get("criterion")
        if criterion is None:  # copying or unpickling: not set yet
            raise AttributeError(name)
        return getattr(criterion, name)

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        loss, items = self.criterion(preds, batch)
        with torch.no_grad():
            taught = self.teacher.class_logits(batch["img"])[:, self.rows].sigmoid()
        learnt = _class_logits(preds)[:, self.rows]
        distance = functional.binary_cross_entropy_with_logits(learnt, taught.to(learnt.dtype), reduction="sum")
        gain = float(getattr(self.criterion.hyp, "cls", 0.5))
        scaled = distance / taught.sum().clamp(min=1.0) * gain * self.weight * learnt.shape[0]
        return loss + scaled, items


class SharedTrunk:
    """The frozen leading layers' outputs of the batch the model in training just ran, for the teacher to start from.

    Those layers are the teacher's own (frozen weights, batch norm on running statistics): running them again for
    the teacher would compute the same tensors. Forward hooks keep the outputs the later layers read.
    """

    def __init__(self, model: nn.Module, frozen: int) -> None:
        layers: Any = model.model  # type: ignore[union-attr]
        self.frozen = frozen
        read = {frozen - 1} | {j for layer in layers[frozen:] for j in _inputs(layer) if 0 <= j < frozen}
        self.outputs: dict[int, torch.Tensor] = {}
        for index in read:
            layers[index].register_forward_hook(self._keeper(index))

    def _keeper(self, index: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.outputs[index] = output.detach()

        return keep

    def kept(self) -> dict[int, torch.Tensor]:
        """The kept outputs of the last batch, by layer index."""
        return dict(self.outputs)


class Teacher:
    """The starting model, frozen, scoring the old labels of each training batch as it sees it.

    It computes only what distillation reads: from the first layer training changes on (the frozen layers' outputs
    are those the model in training just computed, :class:`SharedTrunk`), and of the head only its class branch.
    The box branch (and a segment head's masks, a pose head's keypoints) would cost a fifth of a YOLOv8s teacher
    at 640 px for nothing.
    """

    def __init__(self, model: nn.Module, trunk: SharedTrunk | None = None) -> None:
        self.model = model
        self.trunk = trunk

    def class_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The per-anchor class logits (batch, classes, anchors) of ``images``, the batch the model in training ran."""
        layers: Any = self.model.model  # type: ignore[union-attr]
        *body, head = layers
        start = self.trunk.frozen if self.trunk else 0
        saved: dict[int, Any] = self.trunk.kept() if self.trunk else {}
        x: Any = saved[start - 1] if start else images
        # ultralytics' BaseModel._predict_once loop, begun at ``start``: layer.f names the layers it reads.
        for layer in body[start:]:
            x = layer(_read(layer, x, saved))
            saved[layer.i] = x
        features = _read(head, x, saved)
        # The one-to-many class branch (cv3): what _class_logits reads of the model in training, end-to-end heads too.
        scores = [branch(feature).flatten(2) for branch, feature in zip(head.cv3, features, strict=True)]
        return torch.cat(scores, dim=-1)


def _read(layer: Any, previous: Any, saved: dict[int, Any]) -> Any:
    """What ``layer`` takes as input: the previous layer's output, or the saved outputs its ``f`` names."""
    if layer.f == -1:
        return previous
    return saved[layer.f] if isinstance(layer.f, int) else [previous if j == -1 else saved[j] for j in layer.f]


def _inputs(layer: Any) -> list[int]:
    """The absolute indices of the layers ``layer`` reads (ultralytics' ``f``: -1 is the one before it)."""
    sources = layer.f if isinstance(layer.f, list) else [layer.f]
    return [layer.i + j if j < 0 else j for j in sources]


def distil_into(rows: Sequence[int], weight: float, frozen: int = 0) -> Callable[[Any], None]:
    """An ``on_train_start`` callback that makes the trainer's model learn ``rows`` (class indices) from itself as
    it is before the first step, with ``weight``; its first ``frozen`` layers, which training does not change, run
    once for both."""

    def install(trainer: Any) -> None:
        model = trainer.model
        teacher = Teacher(_frozen_copy(model), SharedTrunk(model, frozen) if frozen > 0 else None)
        model.criterion = DistilledLoss(model.init_criterion(), teacher, rows, weight)

    return install


def _frozen_copy(model: nn.Module) -> nn.Module:
    """The model as it serves (batch norm with its running statistics), its weights out of training's reach."""
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _class_logits(preds: Any) -> torch.Tensor:
    """The per-anchor class logits (batch, classes, anchors) of a ``Detect``-family head's training output."""
    if isinstance(preds, tuple):
        preds = preds[1]
    if "one2many" in preds:  # end-to-end heads train both branches; the one-to-many one scores every anchor
        preds = preds["one2many"]
    return preds["scores"]  # type: ignore[no-any-return]
