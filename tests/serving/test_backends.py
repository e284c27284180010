"""A process's memory does not grow with every project string a client sends."""

from __future__ import annotations

from pathlib import Path

import pytest

import label_studio_yolo.serving.backends
from conftest import BOXES_CONFIG, app_client


def test_project_models_are_bounded_and_share_one_image_loader(
    backend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(label_studio_yolo.serving.backends, "MAX_CACHED_PROJECTS", 8)  # the same rule, fewer builds
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: the tasks fail, fast
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "key")
    task = {"id": 1, "data": {"image": "/data/upload/1/a.png"}}
    with app_client() as client:
        models = client.application.extensions["label_studio_yolo"].backends
        for number in range(1, 15):
            body = {"project": f"{number}.1700000000", "label_config": BOXES_CONFIG, "tasks": [task]}
            assert client.post("/predict", json=body).json["results"] == [[]]

        assert len(models) == 8
        loaders = {id(models.get(f"{n}.1700000000", BOXES_CONFIG).predictor.loader) for n in range(8, 15)}
        assert len(loaders) == 1, "projects of one Label Studio and key share one loader (its session and client)"
        first = models.get("1.1700000000", BOXES_CONFIG)  # dropped long ago: built again, and it still works
        assert first.model_version.startswith("boxes-")
