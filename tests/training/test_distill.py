"""Distillation's teacher: what it scores, and that sharing the frozen trunk with the model in training changes none of
it."""

from __future__ import annotations

import copy

import torch
from torch import nn

from label_studio_yolo.inference.ultralytics_process import load_yolo
from label_studio_yolo.training.distill import SharedTrunk, _class_logits, _frozen_copy
from tests.support.photos import PEOPLE_MODEL

FROZEN = 15
"""YOLOv8's layers before the head's first input: what a job freezes by default."""


def in_training(model: nn.Module, frozen: int) -> nn.Module:
    """``model`` as ultralytics trains it with ``freeze=frozen``: training mode, the frozen layers' batch norm not."""
    model.train()
    for name, module in model.named_modules():
        if any(name.startswith(f"model.{index}.") for index in range(frozen)) and isinstance(module, nn.BatchNorm2d):
            module.eval()
    return model


def test_the_teacher_scores_as_the_served_model_and_from_the_shared_trunk_the_same() -> None:
    served = load_yolo(PEOPLE_MODEL).model.float()
    teacher = _frozen_copy(served)
    student = in_training(copy.deepcopy(served), FROZEN)
    shared = SharedTrunk(student, FROZEN)
    images = torch.rand(2, 3, 256, 256)

    with torch.no_grad():
        student(images)  # the batch the model in training runs; its frozen layers' outputs are kept
        from_trunk = _class_logits(shared.teacher_head(teacher))
        whole = _class_logits(teacher(images))

    assert from_trunk.shape == whole.shape == (2, 1, 1344)
    assert torch.allclose(from_trunk, whole, atol=1e-5)
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
