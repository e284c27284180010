"""Distillation's teacher: what it scores, and that sharing the frozen trunk with the model in training and running only
the head's class branch change none of it."""

from __future__ import annotations

import copy

import torch
from torch import nn

from label_studio_yolo.inference.ultralytics_process import load_yolo
from label_studio_yolo.training.distill import SharedTrunk, Teacher, _class_logits, _frozen_copy
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


def test_the_teacher_scores_as_the_served_model_from_the_shared_trunk_or_the_image() -> None:
    served = load_yolo(PEOPLE_MODEL).model.float()
    teacher = _frozen_copy(served)
    student = in_training(copy.deepcopy(served), FROZEN)
    from_trunk, from_image = Teacher(teacher, SharedTrunk(student, FROZEN)), Teacher(teacher)
    images = torch.rand(2, 3, 256, 256)

    with torch.no_grad():
        student(images)  # the batch the model in training runs; its frozen layers' outputs are kept
        scores = [from_trunk.class_logits(images), from_image.class_logits(images)]
        whole = _class_logits(teacher(images))  # the served model's whole forward pass, every branch of its head

    assert whole.shape == (2, 1, 1344)
    assert all(torch.allclose(score, whole, atol=1e-5) for score in scores)
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
