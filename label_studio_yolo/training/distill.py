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

    def __init__(
        self, criterion: Any, teacher: nn.Module, rows: Sequence[int], weight: float, shared: SharedTrunk | None = None
    ) -> None:
        self.criterion = criterion
        self.teacher = teacher
        self.rows = list(rows)
        self.weight = weight
        self.shared = shared

    def __getattr__(self, name: str) -> Any:
        # ultralytics calls the criterion's own methods through the wrapper (end-to-end heads' ``update()``).
        criterion = self.__dict__.get("criterion")
        if criterion is None:  # copying or unpickling: not set yet
            raise AttributeError(name)
        return getattr(criterion, name)

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        loss, items = self.criterion(preds, batch)
        with torch.no_grad():
            outputs = self.shared.teacher_head(self.teacher) if self.shared else self.teacher(batch["img"])
            taught = _class_logits(outputs)[:, self.rows].sigmoid()
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

    def teacher_head(self, teacher: nn.Module) -> Any:
        """The teacher's output from its first unfrozen layer on: ultralytics' ``BaseModel._predict_once`` loop
        (which always starts at layer 0), begun at :attr:`frozen` with the kept outputs."""
        layers: Any = teacher.model  # type: ignore[union-attr]
        saved: dict[int, Any] = dict(self.outputs)
        x: Any = saved[self.frozen - 1]
        for layer in layers[self.frozen :]:
            if layer.f != -1:
                x = saved[layer.f] if isinstance(layer.f, int) else [x if j == -1 else saved[j] for j in layer.f]
            x = layer(x)
            saved[layer.i] = x
        return x


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
        teacher = _frozen_copy(model)
        shared = SharedTrunk(model, frozen) if frozen > 0 else None
        model.criterion = DistilledLoss(model.init_criterion(), teacher, rows, weight, shared)

    return install


def _frozen_copy(model: nn.Module) -> nn.Module:
    """The model as it serves (batch norm with its running statistics), but whose head returns the raw scores."""
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    head: Any = teacher.model[-1]  # type: ignore[index]
    head.training = True  # only the head's own flag: in training mode it returns the per-anchor logits
    return teacher


def _class_logits(preds: Any) -> torch.Tensor:
    """The per-anchor class logits (batch, classes, anchors) of a ``Detect``-family head's training output."""
    if isinstance(preds, tuple):
        preds = preds[1]
    if "one2many" in preds:  # end-to-end heads train both branches; the one-to-many one scores every anchor
        preds = preds["one2many"]
    return preds["scores"]  # type: ignore[no-any-return]
