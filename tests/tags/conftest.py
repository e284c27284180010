"""Weights for the tag tests: the shipped tiny models of every YOLO task, loaded once per session.

The tag classes read only ``task``, ``class_names``, ``keypoints`` and ``path`` of their weights, but real weights
cost a fraction of a second each (``tests/assets/models``, through conftest.py's ``task_models``), so the tests use
them rather than a stand-in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import WEIGHTS_NAME
from label_studio_yolo.inference.weights import LoadedWeights, load_weights


@pytest.fixture(scope="session")
def detect_weights(task_models: Path) -> LoadedWeights:
    """A detector of classes ``red`` and ``blue`` (``boxes.pt``)."""
    return load_weights(task_models, WEIGHTS_NAME)


@pytest.fixture(scope="session")
def segment_weights(task_models: Path) -> LoadedWeights:
    """A segmentation model of classes ``red`` and ``blue`` (``boxes-seg.pt``)."""
    return load_weights(task_models, "boxes-seg.pt")


@pytest.fixture(scope="session")
def classify_weights(task_models: Path) -> LoadedWeights:
    """A classifier of classes ``blue`` and ``red`` (``colours-cls.pt``)."""
    return load_weights(task_models, "colours-cls.pt")


@pytest.fixture(scope="session")
def pose_weights(task_models: Path) -> LoadedWeights:
    """A pose model of classes ``red`` and ``blue`` with two keypoints per object (``boxes-pose.pt``)."""
    return load_weights(task_models, "boxes-pose.pt")


@pytest.fixture(scope="session")
def obb_weights(task_models: Path) -> LoadedWeights:
    """An OBB model of classes ``red`` and ``blue`` (``boxes-obb.pt``)."""
    return load_weights(task_models, "boxes-obb.pt")
